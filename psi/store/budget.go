package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// BudgetRequest asks to spend identifiers of an advertiser's budget.
type BudgetRequest struct {
	Advertiser  int64
	Session     string        // the session that spends them
	Identifiers int64         // the list size, > 0
	Limit       int64         // identifiers allowed per window, > 0
	Window      time.Duration // length of the rolling window, > 0
	At          time.Time     // now
}

// BudgetStatus is an advertiser's budget after a reservation.
type BudgetStatus struct {
	Used  int64 // spent in the window ending at At, this reservation included
	Limit int64
}

// ErrBudgetExhausted reports a reservation refused because it would
// overspend. The error is a *BudgetError.
var ErrBudgetExhausted = errors.New("store: identifier budget exhausted")

// BudgetError describes a refused reservation.
type BudgetError struct {
	Used      int64     // spent in the window ending now
	Limit     int64     // allowed per window
	Requested int64     // what the refused request asked for
	ResetsAt  time.Time // when enough spend leaves the window; zero if Requested > Limit
}

func (e *BudgetError) Error() string {
	if e.ResetsAt.IsZero() {
		return fmt.Sprintf("identifier budget exhausted: a list of %d is larger than the whole budget of %d per window", e.Requested, e.Limit)
	}
	return fmt.Sprintf("identifier budget exhausted: %d of %d used in the current window, a list of %d does not fit until %s",
		e.Used, e.Limit, e.Requested, e.ResetsAt.UTC().Format(time.RFC3339))
}

// Is makes errors.Is(err, ErrBudgetExhausted) hold.
func (e *BudgetError) Is(target error) bool { return target == ErrBudgetExhausted }

func validateBudget(r *BudgetRequest) error {
	switch {
	case r.Identifiers <= 0:
		return errors.New("store: budget request for no identifiers")
	case r.Limit <= 0 || r.Window <= 0:
		return errors.New("store: budget limit and window must be positive")
	case r.Session == "":
		return errors.New("store: budget request without a session")
	}
	r.At = microTime(r.At)
	return nil
}

type spend struct {
	at time.Time
	n  int64
}

// decide checks a request against the spends in its window (ascending by
// time) and, when it does not fit, says when it will.
func decide(r BudgetRequest, spends []spend) (used int64, err error) {
	for _, s := range spends {
		used += s.n
	}
	if used+r.Identifiers <= r.Limit {
		return used, nil
	}
	be := &BudgetError{Used: used, Limit: r.Limit, Requested: r.Identifiers}
	if r.Identifiers <= r.Limit {
		// A spend at t leaves the window at t + Window.
		left := used
		for _, s := range spends {
			left -= s.n
			if left+r.Identifiers <= r.Limit {
				be.ResetsAt = s.at.Add(r.Window)
				break
			}
		}
	}
	return used, be
}

// ReserveBudget implements [Registry]. The write connection serializes
// transactions (BEGIN IMMEDIATE), so two reservations never both see the
// spend before the other.
func (s *SQLite) ReserveBudget(ctx context.Context, r BudgetRequest) (BudgetStatus, error) {
	if err := validateBudget(&r); err != nil {
		return BudgetStatus{}, err
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return BudgetStatus{}, fmt.Errorf("store: reserve budget: %w", err)
	}
	defer tx.Rollback()
	var exists int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM advertisers WHERE id = $1`, r.Advertiser).Scan(&exists); err != nil {
		return BudgetStatus{}, fmt.Errorf("store: reserve budget: %w", err)
	}
	if exists == 0 {
		return BudgetStatus{}, ErrUnknownAdvertiser
	}
	rows, err := tx.QueryContext(ctx, `SELECT at, identifiers FROM budget_spend WHERE advertiser_id = $1 AND at > $2 ORDER BY at, id`,
		r.Advertiser, r.At.Add(-r.Window).UnixMicro())
	if err != nil {
		return BudgetStatus{}, fmt.Errorf("store: reserve budget: %w", err)
	}
	var spends []spend
	for rows.Next() {
		var at, n int64
		if err := rows.Scan(&at, &n); err != nil {
			rows.Close()
			return BudgetStatus{}, fmt.Errorf("store: reserve budget: %w", err)
		}
		spends = append(spends, spend{time.UnixMicro(at).UTC(), n})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return BudgetStatus{}, fmt.Errorf("store: reserve budget: %w", err)
	}
	used, err := decide(r, spends)
	if err != nil {
		return BudgetStatus{Used: used, Limit: r.Limit}, err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO budget_spend (advertiser_id, session_id, at, identifiers) VALUES ($1, $2, $3, $4)`,
		r.Advertiser, r.Session, r.At.UnixMicro(), r.Identifiers); err != nil {
		return BudgetStatus{}, fmt.Errorf("store: reserve budget: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return BudgetStatus{}, fmt.Errorf("store: reserve budget: %w", err)
	}
	return BudgetStatus{Used: used + r.Identifiers, Limit: r.Limit}, nil
}

// BudgetUsed implements [Registry].
func (s *SQLite) BudgetUsed(ctx context.Context, advertiser int64, window time.Duration, at time.Time) (int64, error) {
	var used sql.NullInt64
	err := s.r.QueryRowContext(ctx, `SELECT SUM(identifiers) FROM budget_spend WHERE advertiser_id = $1 AND at > $2`,
		advertiser, microTime(at).Add(-window).UnixMicro()).Scan(&used)
	if err != nil {
		return 0, fmt.Errorf("store: budget used: %w", err)
	}
	return used.Int64, nil
}

// ReserveBudget implements [Registry]. The advertiser's row is locked (FOR
// UPDATE) for the transaction, so reservations of one advertiser run one
// after the other.
func (p *Postgres) ReserveBudget(ctx context.Context, r BudgetRequest) (BudgetStatus, error) {
	if err := validateBudget(&r); err != nil {
		return BudgetStatus{}, err
	}
	var st BudgetStatus
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		var id int64
		if err := tx.QueryRow(ctx, `SELECT id FROM advertisers WHERE id = $1 FOR UPDATE`, r.Advertiser).Scan(&id); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return ErrUnknownAdvertiser
			}
			return fmt.Errorf("store: reserve budget: %w", err)
		}
		rows, err := tx.Query(ctx, `SELECT at, identifiers FROM budget_spend WHERE advertiser_id = $1 AND at > $2 ORDER BY at, id`,
			r.Advertiser, r.At.Add(-r.Window))
		if err != nil {
			return fmt.Errorf("store: reserve budget: %w", err)
		}
		var spends []spend
		for rows.Next() {
			var sp spend
			if err := rows.Scan(&sp.at, &sp.n); err != nil {
				rows.Close()
				return fmt.Errorf("store: reserve budget: %w", err)
			}
			spends = append(spends, sp)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("store: reserve budget: %w", err)
		}
		used, err := decide(r, spends)
		st = BudgetStatus{Used: used, Limit: r.Limit}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO budget_spend (advertiser_id, session_id, at, identifiers) VALUES ($1, $2, $3, $4)`,
			r.Advertiser, r.Session, r.At, r.Identifiers); err != nil {
			return fmt.Errorf("store: reserve budget: %w", err)
		}
		st.Used += r.Identifiers
		return nil
	})
	return st, err
}

// BudgetUsed implements [Registry].
func (p *Postgres) BudgetUsed(ctx context.Context, advertiser int64, window time.Duration, at time.Time) (int64, error) {
	var used *int64
	err := p.pool.QueryRow(ctx, `SELECT SUM(identifiers)::bigint FROM budget_spend WHERE advertiser_id = $1 AND at > $2`,
		advertiser, microTime(at).Add(-window)).Scan(&used)
	if err != nil {
		return 0, fmt.Errorf("store: budget used: %w", err)
	}
	if used == nil {
		return 0, nil
	}
	return *used, nil
}
