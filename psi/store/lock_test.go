package store

import (
	"testing"
	"time"
)

// On PostgreSQL a reservation locks its advertiser's row for the whole
// transaction (SELECT … FOR UPDATE), so that two reservations of one
// advertiser never both read the spend before the other writes. The
// concurrent-budget tests can pass without the lock when the scheduler does
// not interleave the transactions; this one cannot: while another
// transaction holds the row, the reservation must wait. The holder takes
// FOR NO KEY UPDATE, which conflicts with FOR UPDATE but not with the KEY
// SHARE lock the spend's foreign key takes, so only the reservation's own
// lock can make it wait.
func TestPostgresReservationLocksTheAdvertiser(t *testing.T) {
	s := openPostgresTest(t).(*Postgres)
	a := mustAdvertiser(t, s, "acme")
	ctx := t.Context()
	holder, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback(ctx)
	if _, err := holder.Exec(ctx, `SELECT id FROM advertisers WHERE id = $1 FOR NO KEY UPDATE`, a.ID); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.ReserveBudget(ctx, BudgetRequest{Advertiser: a.ID, Session: "s1", Identifiers: 10, Limit: 100,
			Window: time.Hour, At: t0})
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("the reservation finished (%v) while another transaction held the advertiser's row: it does not lock it", err)
	case <-time.After(500 * time.Millisecond):
	}
	if err := holder.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("the reservation after the lock was released: %v", err)
	}
}
