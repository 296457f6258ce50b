package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/overlap-psi/overlap/psi/dp"
)

// BudgetRequest asks to spend identifiers, and for a private-mode session
// privacy budget, of an advertiser's budgets. Both are checked over the
// same window.
type BudgetRequest struct {
	Advertiser  int64
	Session     string        // the session that spends them
	Identifiers int64         // the list size, > 0
	Limit       int64         // identifiers allowed per window, > 0
	Window      time.Duration // length of the rolling window, > 0
	At          time.Time     // now
	// Epsilon is the privacy budget the session spends, in micro-ε
	// (ε·10^6 rounded up, [dp.EpsilonOf]); 0 for exact mode.
	Epsilon int64
	// EpsilonLimit is the privacy budget per window, in micro-ε; required
	// (> 0) when Epsilon > 0.
	EpsilonLimit int64
	// Admission, when not nil, is checked first, in the same transaction
	// (admission.go): the advertiser's open sessions and abandoned ones.
	Admission *Admission
}

// BudgetStatus is an advertiser's budgets after a reservation.
type BudgetStatus struct {
	Used  int64 // identifiers spent in the window ending at At, this reservation included
	Limit int64
	// EpsilonUsed is the micro-ε spent in the window ending at At, this
	// reservation included; EpsilonLimit echoes the request's.
	EpsilonUsed, EpsilonLimit int64
	// Reconciled are the audit rows of the advertiser's sessions whose
	// lease had ended, which the reservation closed as crashed (only with
	// an Admission); they are committed also when the reservation is
	// refused.
	Reconciled []SessionRecord
}

// The budgets a [BudgetError] can name.
const (
	BudgetIdentifiers = "identifiers"
	BudgetPrivacy     = "privacy"
)

// ErrBudgetExhausted reports a reservation refused because it would
// overspend one of the advertiser's budgets. The error is a *BudgetError.
var ErrBudgetExhausted = errors.New("store: budget exhausted")

// ErrNoBudgetSpend reports a refund for a session that spent nothing of
// the advertiser's budgets.
var ErrNoBudgetSpend = errors.New("store: no budget spend recorded for the session")

// BudgetError describes a refused reservation. For the privacy budget,
// Used, Limit and Requested are in micro-ε.
type BudgetError struct {
	Budget    string    // BudgetIdentifiers or BudgetPrivacy
	Used      int64     // spent in the window ending now
	Limit     int64     // allowed per window
	Requested int64     // what the refused request asked for
	ResetsAt  time.Time // when enough spend leaves the window; zero if Requested > Limit
}

func (e *BudgetError) Error() string {
	if e.Budget == BudgetPrivacy {
		if e.ResetsAt.IsZero() {
			return fmt.Sprintf("privacy budget exhausted: a session of ε %s is more than the whole budget of ε %s per window",
				dp.Epsilon(e.Requested).String(), dp.Epsilon(e.Limit).String())
		}
		return fmt.Sprintf("privacy budget exhausted: ε %s of %s used in the current window, a session of ε %s does not fit until %s",
			dp.Epsilon(e.Used).String(), dp.Epsilon(e.Limit).String(), dp.Epsilon(e.Requested).String(), e.ResetsAt.UTC().Format(time.RFC3339))
	}
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
	case r.Epsilon < 0 || r.EpsilonLimit < 0:
		return errors.New("store: negative privacy budget")
	case r.Epsilon > 0 && r.EpsilonLimit == 0:
		return errors.New("store: a privacy spend needs a privacy budget limit")
	}
	r.At = microTime(r.At)
	return nil
}

// spend is one budget_spend row of a window.
type spend struct {
	at                   time.Time
	identifiers, epsilon int64
}

// fit checks requested against the amounts of spends (ascending by time)
// and limit and, when it does not fit, says when it will.
func fit(budget string, spends []spend, amount func(spend) int64, requested, limit int64, window time.Duration) (used int64, be *BudgetError) {
	for _, s := range spends {
		used += amount(s)
	}
	if requested <= limit-used {
		return used, nil
	}
	be = &BudgetError{Budget: budget, Used: used, Limit: limit, Requested: requested}
	if requested <= limit {
		// A spend at t leaves the window at t + window.
		left := used
		for _, s := range spends {
			left -= amount(s)
			if requested <= limit-left {
				be.ResetsAt = s.at.Add(window)
				break
			}
		}
	}
	return used, be
}

// decide checks a request against both budgets. When neither fits it
// reports the one that fits later (or never), so that the session does
// fit at ResetsAt; on a tie, the identifier budget.
func decide(r BudgetRequest, spends []spend) (BudgetStatus, error) {
	used, idErr := fit(BudgetIdentifiers, spends, func(s spend) int64 { return s.identifiers }, r.Identifiers, r.Limit, r.Window)
	eps, epsErr := fit(BudgetPrivacy, spends, func(s spend) int64 { return s.epsilon }, r.Epsilon, r.EpsilonLimit, r.Window)
	st := BudgetStatus{Used: used, Limit: r.Limit, EpsilonUsed: eps, EpsilonLimit: r.EpsilonLimit}
	if r.Epsilon == 0 {
		epsErr = nil // an exact-mode session spends no privacy budget
	}
	switch {
	case idErr == nil && epsErr == nil:
		return st, nil
	case epsErr == nil:
		return st, idErr
	case idErr == nil:
		return st, epsErr
	case idErr.ResetsAt.IsZero() || (!epsErr.ResetsAt.IsZero() && !epsErr.ResetsAt.After(idErr.ResetsAt)):
		return st, idErr
	}
	return st, epsErr
}

// SQL of the budgets, shared by both engines. b is budget_spend.
const (
	// sqlNotRefunded: spend b was not refunded.
	sqlNotRefunded = `NOT EXISTS (SELECT 1 FROM budget_refunds f WHERE f.session_id = b.session_id AND f.advertiser_id = b.advertiser_id)`
	// sqlInWindow: spend b counts in the window of advertiser $1 after $2.
	sqlInWindow = `b.advertiser_id = $1 AND b.at > $2 AND ` + sqlNotRefunded

	sqlWindowSpends = `SELECT b.at, b.identifiers, b.epsilon_micros FROM budget_spend b WHERE ` + sqlInWindow + ` ORDER BY b.at, b.id`
	sqlWindowTotals = `SELECT CAST(COALESCE(SUM(b.identifiers), 0) AS BIGINT), CAST(COALESCE(SUM(b.epsilon_micros), 0) AS BIGINT)
		FROM budget_spend b WHERE ` + sqlInWindow
	sqlInsertSpend = `INSERT INTO budget_spend (advertiser_id, session_id, at, identifiers, epsilon_micros) VALUES ($1, $2, $3, $4, $5)`

	sqlSpendExists = `SELECT count(*) FROM budget_spend WHERE session_id = $1 AND advertiser_id = $2`
	sqlRefund      = `INSERT INTO budget_refunds (session_id, advertiser_id, at) VALUES ($1, $2, $3) ON CONFLICT (session_id) DO NOTHING`
	sqlRefundedBy  = `SELECT advertiser_id FROM budget_refunds WHERE session_id = $1`
)

func validateRefund(session string, at time.Time) (time.Time, error) {
	if session == "" {
		return time.Time{}, errors.New("store: refund without a session")
	}
	if at.IsZero() {
		return time.Time{}, errors.New("store: refund without a time")
	}
	return microTime(at), nil
}

// refundOutcome finishes a refund whose insert hit an existing row: the
// session was refunded already, for this advertiser (a no-op) or another.
func refundOutcome(advertiser, refundedBy int64) error {
	if refundedBy != advertiser {
		return errors.New("store: refund budget: the session was refunded for another advertiser")
	}
	return nil
}

// ReserveBudget implements [Registry]. On SQLite the write connection
// serializes transactions (BEGIN IMMEDIATE); on PostgreSQL the
// advertiser's row is locked (FOR UPDATE) for the transaction, so
// reservations of one advertiser run one after the other: two reservations
// never both see the spend before the other.
func (c *core) ReserveBudget(ctx context.Context, r BudgetRequest) (BudgetStatus, error) {
	if err := validateBudget(&r); err != nil {
		return BudgetStatus{}, err
	}
	var st BudgetStatus
	var refusal error
	err := c.inTx(ctx, "reserve budget", func(tx q) error {
		var err error
		st, err = c.reserve(ctx, tx, r)
		if refused(err) {
			refusal = err
			return nil // commit the expired sessions it closed
		}
		return err
	})
	if err != nil {
		return BudgetStatus{}, err
	}
	return st, refusal
}

// reserve checks and records the validated reservation r in tx: its
// admission, if any, then the budgets. The status it returns with a
// *BudgetError is the one the check saw; with a refusal it holds the
// sessions the admission closed, which the caller commits.
func (c *core) reserve(ctx context.Context, tx q, r BudgetRequest) (BudgetStatus, error) {
	var id int64
	if err := tx.queryRow(ctx, `SELECT id FROM advertisers WHERE id = $1`+c.forUpdate, r.Advertiser).Scan(&id); err != nil {
		if isNoRows(err) {
			return BudgetStatus{}, ErrUnknownAdvertiser
		}
		return BudgetStatus{}, fmt.Errorf("store: reserve budget: %w", err)
	}
	var closed []SessionRecord
	if r.Admission != nil {
		var err error
		if closed, err = c.admit(ctx, tx, r, r.Admission); err != nil {
			return BudgetStatus{Reconciled: closed}, err
		}
	}
	spends, err := queryAll(ctx, tx, "reserve budget", scanSpend, sqlWindowSpends, r.Advertiser, c.ts(r.At.Add(-r.Window)))
	if err != nil {
		return BudgetStatus{}, err
	}
	st, err := decide(r, spends)
	st.Reconciled = closed
	if err != nil {
		return st, err
	}
	if _, err := tx.exec(ctx, sqlInsertSpend, r.Advertiser, r.Session, c.ts(r.At), r.Identifiers, r.Epsilon); err != nil {
		return BudgetStatus{}, fmt.Errorf("store: reserve budget: %w", err)
	}
	st.Used += r.Identifiers
	st.EpsilonUsed += r.Epsilon
	return st, nil
}

// scanSpend scans a row of sqlWindowSpends.
func scanSpend(row scanner) (spend, error) {
	var at stamp
	var sp spend
	err := row.Scan(&at, &sp.identifiers, &sp.epsilon)
	sp.at = at.t
	return sp, err
}

// RefundBudget implements [Registry].
func (c *core) RefundBudget(ctx context.Context, advertiser int64, session string, at time.Time) error {
	at, err := validateRefund(session, at)
	if err != nil {
		return err
	}
	return c.inTx(ctx, "refund budget", func(tx q) error {
		var n int64
		if err := tx.queryRow(ctx, sqlSpendExists, session, advertiser).Scan(&n); err != nil {
			return fmt.Errorf("store: refund budget: %w", err)
		}
		if n == 0 {
			return ErrNoBudgetSpend
		}
		res, err := tx.exec(ctx, sqlRefund, session, advertiser, c.ts(at))
		if err != nil {
			return fmt.Errorf("store: refund budget: %w", err)
		}
		if added, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("store: refund budget: %w", err)
		} else if added == 0 {
			var by int64
			if err := tx.queryRow(ctx, sqlRefundedBy, session).Scan(&by); err != nil {
				return fmt.Errorf("store: refund budget: %w", err)
			}
			return refundOutcome(advertiser, by)
		}
		return nil
	})
}

func (c *core) windowTotals(ctx context.Context, advertiser int64, window time.Duration, at time.Time) (ids, eps int64, err error) {
	err = c.reader.queryRow(ctx, sqlWindowTotals, advertiser, c.ts(microTime(at).Add(-window))).Scan(&ids, &eps)
	return ids, eps, err
}

// BudgetUsed implements [Registry].
func (c *core) BudgetUsed(ctx context.Context, advertiser int64, window time.Duration, at time.Time) (int64, error) {
	used, _, err := c.windowTotals(ctx, advertiser, window, at)
	if err != nil {
		return 0, fmt.Errorf("store: budget used: %w", err)
	}
	return used, nil
}

// EpsilonUsed implements [Registry].
func (c *core) EpsilonUsed(ctx context.Context, advertiser int64, window time.Duration, at time.Time) (int64, error) {
	_, used, err := c.windowTotals(ctx, advertiser, window, at)
	if err != nil {
		return 0, fmt.Errorf("store: epsilon used: %w", err)
	}
	return used, nil
}
