// Package storetest is the conformance suite every store.Store
// implementation must pass: an implementation's own test calls Run with a
// function that opens a fresh, empty store. The concurrency cases race real
// goroutines on that store, a bounded number of them, each case within a
// deadline. It does not test what is particular to one implementation
// (files, permissions, connection strings).
package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"meshward.dev/meshward/internal/policy"
	"meshward.dev/meshward/internal/store"
)

// Racers is how many goroutines each concurrency case starts.
const Racers = 16

// deadline bounds each concurrency case.
const deadline = 30 * time.Second

// Open returns a fresh, empty store; Run closes it.
type Open func(t *testing.T) store.Store

// Run runs the suite, one subtest per property.
func Run(t *testing.T, open Open) {
	t.Helper()
	cases := []struct {
		name string
		test func(*testing.T, store.Store)
	}{
		{"TokenSingleUse", testTokenSingleUse},
		{"TokenChecks", testTokenChecks},
		{"SerialUniqueness", testSerialUniqueness},
		{"CACompareAndSwap", testCACompareAndSwap},
		{"CACompareAndSwapRace", testCACompareAndSwapRace},
		{"PolicyVersionLinearity", testPolicyVersionLinearity},
		{"AuditPaging", testAuditPaging},
		{"AuditPagingWhileAppending", testAuditPagingWhileAppending},
		{"PruneAudit", testPruneAudit},
		{"Bans", testBans},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("close: %v", err)
				}
			})
			tc.test(t, s)
		})
	}
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// race runs f(0..n-1) in goroutines released at once and fails the test if
// they have not all returned before the deadline.
func race(t *testing.T, n int, f func(i int)) {
	t.Helper()
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			f(i)
		}()
	}
	close(start)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(deadline):
		t.Fatalf("%d racing goroutines did not finish within %s", n, deadline)
	}
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	t.Cleanup(cancel)
	return ctx
}

// testTokenSingleUse: of many concurrent redemptions of one token exactly
// one succeeds; the rest get ErrTokenUsed.
func testTokenSingleUse(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	for round := range 3 {
		hash := []byte("token-hash-" + strconv.Itoa(round))
		tok := store.Token{Hash: hash, SPIFFEID: "spiffe://example.org/ns/default/sa/web", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
		if err := s.CreateToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
		now := t0.Add(time.Minute)
		var (
			mu     sync.Mutex
			won    []store.Token
			checks int
		)
		errs := make([]error, Racers)
		race(t, Racers, func(i int) {
			got, err := s.ConsumeToken(ctx, hash, now, func(store.Token) error {
				mu.Lock()
				checks++
				mu.Unlock()
				return nil
			})
			errs[i] = err
			if err == nil {
				mu.Lock()
				won = append(won, got)
				mu.Unlock()
			}
		})
		for i, err := range errs {
			if err != nil && !errors.Is(err, store.ErrTokenUsed) {
				t.Errorf("round %d, redeemer %d: %v, want nil or ErrTokenUsed", round, i, err)
			}
		}
		if len(won) != 1 {
			t.Fatalf("round %d: %d of %d concurrent redemptions succeeded, want exactly 1", round, len(won), Racers)
		}
		if checks == 0 {
			t.Errorf("round %d: check never ran", round)
		}
		if got := won[0]; got.SPIFFEID != tok.SPIFFEID || !got.UsedAt.Equal(now) {
			t.Errorf("round %d: redeemed %+v, want %s used at %s", round, got, tok.SPIFFEID, now)
		}
		if _, err := s.ConsumeToken(ctx, hash, now, nil); !errors.Is(err, store.ErrTokenUsed) {
			t.Errorf("round %d: redeemed again: %v, want ErrTokenUsed", round, err)
		}
	}
}

// testTokenChecks: unknown, expired and refused-by-check tokens are not
// redeemed, and a refusal leaves the token good.
func testTokenChecks(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	tok := store.Token{Hash: []byte("h"), SPIFFEID: "spiffe://example.org/a", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	if err := s.CreateToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateToken(ctx, tok); err == nil {
		t.Error("a second token with the same hash was stored")
	}
	if _, err := s.ConsumeToken(ctx, []byte("nope"), t0, nil); !errors.Is(err, store.ErrTokenUnknown) {
		t.Errorf("unknown token: %v, want ErrTokenUnknown", err)
	}
	if _, err := s.ConsumeToken(ctx, tok.Hash, tok.ExpiresAt, nil); !errors.Is(err, store.ErrTokenExpired) {
		t.Errorf("at expiry: %v, want ErrTokenExpired", err)
	}
	refused := errors.New("refused")
	if _, err := s.ConsumeToken(ctx, tok.Hash, t0, func(store.Token) error { return refused }); !errors.Is(err, refused) {
		t.Errorf("check refusal: %v, want it returned", err)
	}
	if _, err := s.ConsumeToken(ctx, tok.Hash, t0, nil); err != nil {
		t.Errorf("after a refused check the token is not good any more: %v", err)
	}
}

// testSerialUniqueness: concurrent records of distinct serials all land,
// each once; of concurrent records of one serial exactly one lands and the
// rest get ErrSerialExists.
func testSerialUniqueness(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	const perRacer = 4
	cert := func(serial, root string, notAfter time.Time) store.IssuedCert {
		return store.IssuedCert{Serial: serial, SPIFFEID: "spiffe://example.org/" + serial, RootFP: root, NotAfter: notAfter, IssuedAt: t0}
	}
	errs := make([]error, Racers)
	race(t, Racers, func(i int) {
		for j := range perRacer {
			if err := s.RecordCert(ctx, cert(fmt.Sprintf("%02x%02x", i, j), "root-a", t0.Add(time.Duration(i*perRacer+j)*time.Minute))); err != nil {
				errs[i] = err
				return
			}
		}
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("racer %d: %v", i, err)
		}
	}
	const dup = "ffff"
	race(t, Racers, func(i int) {
		errs[i] = s.RecordCert(ctx, cert(dup, fmt.Sprintf("root-%d", i), t0.Add(48*time.Hour+time.Duration(i)*time.Hour)))
	})
	won := -1
	for i, err := range errs {
		switch {
		case err == nil && won >= 0:
			t.Errorf("serial %s recorded by racers %d and %d", dup, won, i)
		case err == nil:
			won = i
		case !errors.Is(err, store.ErrSerialExists):
			t.Errorf("racer %d: %v, want nil or ErrSerialExists", i, err)
		}
	}
	if won < 0 {
		t.Fatalf("no racer recorded serial %s", dup)
	}

	got, err := s.IssuedCerts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]store.IssuedCert{}
	for _, c := range got {
		if _, ok := seen[c.Serial]; ok {
			t.Errorf("serial %s listed twice", c.Serial)
		}
		seen[c.Serial] = c
	}
	if want := Racers*perRacer + 1; len(seen) != want {
		t.Errorf("%d serials in the log, want %d", len(seen), want)
	}
	if c := seen[dup]; c.RootFP != fmt.Sprintf("root-%d", won) {
		t.Errorf("serial %s is logged for %s, want the first recorder's root-%d", dup, c.RootFP, won)
	}
	latest, err := s.LatestExpiry(ctx, "root-a")
	if want := t0.Add(time.Duration(Racers*perRacer-1) * time.Minute); err != nil || !latest.Equal(want) {
		t.Errorf("LatestExpiry(root-a) = %s, %v; want %s", latest, err, want)
	}
	if latest, err := s.LatestExpiry(ctx, "no-such-root"); err != nil || !latest.IsZero() {
		t.Errorf("LatestExpiry(unknown root) = %s, %v; want zero", latest, err)
	}
}

// testCACompareAndSwap: SaveCA writes only over the revision it names.
func testCACompareAndSwap(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	if blob, rev, err := s.LoadCA(ctx); !errors.Is(err, store.ErrNotFound) || rev != 0 || blob != nil {
		t.Fatalf("LoadCA on an empty store = %q, %d, %v; want ErrNotFound", blob, rev, err)
	}
	if _, err := s.SaveCA(ctx, []byte("stale"), 7); !errors.Is(err, store.ErrCAConflict) {
		t.Fatalf("SaveCA over a revision that does not exist: %v, want ErrCAConflict", err)
	}
	r1, err := s.SaveCA(ctx, []byte("one"), 0)
	if err != nil || r1 <= 0 {
		t.Fatalf("first SaveCA = %d, %v; want a positive revision", r1, err)
	}
	if _, err := s.SaveCA(ctx, []byte("again"), 0); !errors.Is(err, store.ErrCAConflict) {
		t.Fatalf("second create: %v, want ErrCAConflict", err)
	}
	assertCA(t, s, "one", r1)
	r2, err := s.SaveCA(ctx, []byte("two"), r1)
	if err != nil || r2 == r1 || r2 <= 0 {
		t.Fatalf("SaveCA over %d = %d, %v; want a new positive revision", r1, r2, err)
	}
	if _, err := s.SaveCA(ctx, []byte("stale"), r1); !errors.Is(err, store.ErrCAConflict) {
		t.Fatalf("SaveCA over the old revision: %v, want ErrCAConflict", err)
	}
	assertCA(t, s, "two", r2)
	r3, err := s.SaveCA(ctx, []byte("three"), r2)
	if err != nil || r3 == r1 || r3 == r2 {
		t.Fatalf("SaveCA over %d = %d, %v; want a revision never used before", r2, r3, err)
	}
	assertCA(t, s, "three", r3)
}

func assertCA(t *testing.T, s store.Store, blob string, rev int64) {
	t.Helper()
	got, gotRev, err := s.LoadCA(context.Background())
	if err != nil || string(got) != blob || gotRev != rev {
		t.Fatalf("LoadCA = %q, %d, %v; want %q, %d", got, gotRev, err, blob, rev)
	}
}

// testCACompareAndSwapRace: of racers saving over the same revision
// exactly one wins, and the store holds the winner's blob at the winner's
// revision; the same for racers creating the first CA.
func testCACompareAndSwapRace(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	prev := int64(0)
	for round := range 4 {
		revs := make([]int64, Racers)
		errs := make([]error, Racers)
		race(t, Racers, func(i int) {
			revs[i], errs[i] = s.SaveCA(ctx, []byte(fmt.Sprintf("round %d racer %d", round, i)), prev)
		})
		won := -1
		for i, err := range errs {
			switch {
			case err == nil && won >= 0:
				t.Fatalf("round %d: racers %d and %d both saved over revision %d", round, won, i, prev)
			case err == nil:
				won = i
			case !errors.Is(err, store.ErrCAConflict):
				t.Fatalf("round %d, racer %d: %v, want nil or ErrCAConflict", round, i, err)
			}
		}
		if won < 0 {
			t.Fatalf("round %d: no racer saved over revision %d", round, prev)
		}
		assertCA(t, s, fmt.Sprintf("round %d racer %d", round, won), revs[won])
		prev = revs[won]
	}
}

// testPolicyVersionLinearity: concurrent saves get revisions 1..n, each
// once, and PolicyVersions lists them in revision order with what each
// save stored.
func testPolicyVersionLinearity(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	if vs, err := s.PolicyVersions(ctx); err != nil || len(vs) != 0 {
		t.Fatalf("PolicyVersions on an empty store = %v, %v", vs, err)
	}
	first, err := s.SavePolicy(ctx, store.PolicyVersion{Revision: 42, Version: "v0", AppliedAt: t0, AppliedBy: "admin", Files: []policy.File{{Name: "a.yaml", Data: []byte("a")}}})
	if err != nil || first.Revision != 1 {
		t.Fatalf("first SavePolicy = revision %d, %v; want 1 (the given revision ignored)", first.Revision, err)
	}
	saved := make([]store.PolicyVersion, Racers)
	errs := make([]error, Racers)
	race(t, Racers, func(i int) {
		saved[i], errs[i] = s.SavePolicy(ctx, store.PolicyVersion{
			Version: fmt.Sprintf("v%d", i+1), AppliedAt: t0.Add(time.Duration(i) * time.Second), AppliedBy: "admin",
			Message: "racer " + strconv.Itoa(i), Files: []policy.File{{Name: fmt.Sprintf("p%d.yaml", i), Data: []byte(strconv.Itoa(i))}},
		})
	})
	byRev := map[int64]store.PolicyVersion{first.Revision: first}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("racer %d: %v", i, err)
		}
		if other, dup := byRev[saved[i].Revision]; dup {
			t.Fatalf("revision %d given to %s and %s", saved[i].Revision, other.Version, saved[i].Version)
		}
		byRev[saved[i].Revision] = saved[i]
	}
	vs, err := s.PolicyVersions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != Racers+1 {
		t.Fatalf("%d versions listed, want %d", len(vs), Racers+1)
	}
	for i, v := range vs {
		if v.Revision != int64(i+1) {
			t.Fatalf("version %d of the list has revision %d, want %d (revisions 1..n, oldest first)", i, v.Revision, i+1)
		}
		if diff := cmp.Diff(byRev[v.Revision], v); diff != "" {
			t.Errorf("revision %d differs from what SavePolicy returned (-saved +listed):\n%s", v.Revision, diff)
		}
	}
	next, err := s.SavePolicy(ctx, store.PolicyVersion{Version: "last", AppliedAt: t0})
	if err != nil || next.Revision != int64(Racers+2) {
		t.Fatalf("SavePolicy after the race = revision %d, %v; want %d (latest + 1)", next.Revision, err, Racers+2)
	}
}

// testAuditPaging pages through a trail (with events before since mixed
// in) with every page size: the pages together are exactly Audit's answer.
func testAuditPaging(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	if page, next, err := s.AuditPage(ctx, time.Time{}, 0, 10); err != nil || len(page) != 0 || next != 0 {
		t.Fatalf("AuditPage on an empty trail = %v, %d, %v", page, next, err)
	}
	for i := range 23 {
		at := t0.Add(time.Duration(i) * time.Minute)
		if i%3 == 0 {
			at = t0.Add(-time.Hour) // before since
		}
		if err := s.AppendAudit(ctx, store.AuditEvent{Time: at, Action: "x", Detail: strconv.Itoa(i), Outcome: "ok"}); err != nil {
			t.Fatal(err)
		}
	}
	want, err := s.Audit(ctx, t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != 23-8 {
		t.Fatalf("Audit(since) = %d events, want %d", len(want), 23-8)
	}
	for _, limit := range []int{1, 2, 5, 15, 16, 100} {
		got := pageAll(t, s, t0, limit)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("limit %d: pages differ from Audit (-want +got):\n%s", limit, diff)
		}
	}
	for _, limit := range []int{0, -1} {
		if _, _, err := s.AuditPage(ctx, t0, 0, limit); err == nil {
			t.Errorf("limit %d accepted", limit)
		}
	}
}

// pageAll reads every page, failing the test on an error.
func pageAll(t *testing.T, s store.Store, since time.Time, limit int) []store.AuditEvent {
	t.Helper()
	got, err := readPages(s, since, limit)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// readPages reads every page; it may run outside the test's goroutine.
func readPages(s store.Store, since time.Time, limit int) ([]store.AuditEvent, error) {
	var (
		got   []store.AuditEvent
		after uint64
	)
	for pages := 1; ; pages++ {
		if pages > 1000 {
			return nil, fmt.Errorf("limit %d: no end after 1000 pages", limit)
		}
		page, next, err := s.AuditPage(context.Background(), since, after, limit)
		if err != nil {
			return nil, fmt.Errorf("limit %d: %w", limit, err)
		}
		if len(page) > limit {
			return nil, fmt.Errorf("limit %d: page of %d", limit, len(page))
		}
		got = append(got, page...)
		if next == 0 {
			return got, nil
		}
		if next <= after {
			return nil, fmt.Errorf("limit %d: cursor went from %d to %d", limit, after, next)
		}
		after = next
	}
}

// testAuditPagingWhileAppending: writers append while a reader pages. The
// reader sees every event that was there when it started, no event twice,
// and each writer's events in the order it appended them; afterwards the
// trail holds every event once.
func testAuditPagingWhileAppending(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	const before, perWriter = 20, 25
	for i := range before {
		if err := s.AppendAudit(ctx, store.AuditEvent{Time: t0, Action: "before", Subject: "-", Detail: strconv.Itoa(i)}); err != nil {
			t.Fatal(err)
		}
	}
	writers := Racers - 1
	var (
		read    []store.AuditEvent
		readErr error
	)
	errs := make([]error, writers)
	race(t, Racers, func(i int) {
		if i == writers {
			read, readErr = readPages(s, time.Time{}, 3)
			return
		}
		for j := range perWriter {
			e := store.AuditEvent{Time: t0.Add(time.Second), Action: "during", Subject: strconv.Itoa(i), Detail: strconv.Itoa(j)}
			if err := s.AppendAudit(ctx, e); err != nil {
				errs[i] = err
				return
			}
		}
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("writer %d: %v", i, err)
		}
	}
	if readErr != nil {
		t.Fatalf("paging while appending: %v", readErr)
	}
	checkOrder := func(what string, events []store.AuditEvent) {
		t.Helper()
		seen := map[string]bool{}
		last := map[string]int{}
		for _, e := range events {
			key := e.Action + "/" + e.Subject + "/" + e.Detail
			if seen[key] {
				t.Fatalf("%s: %s twice", what, key)
			}
			seen[key] = true
			n, _ := strconv.Atoi(e.Detail)
			if p, ok := last[e.Subject]; ok && n <= p {
				t.Fatalf("%s: writer %s's event %d after its event %d", what, e.Subject, n, p)
			}
			last[e.Subject] = n
		}
	}
	checkOrder("paged while appending", read)
	if len(read) < before {
		t.Fatalf("the reader saw %d events, fewer than the %d that were there when it started", len(read), before)
	}
	for i, e := range read[:before] {
		if e.Action != "before" || e.Detail != strconv.Itoa(i) {
			t.Fatalf("event %d the reader saw is %s/%s, want before/%d: the events that were there first come first, in order", i, e.Action, e.Detail, i)
		}
	}
	all, err := s.Audit(ctx, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	checkOrder("the trail", all)
	if len(all) != before+writers*perWriter {
		t.Fatalf("the trail holds %d events, want %d", len(all), before+writers*perWriter)
	}
	paged := pageAll(t, s, time.Time{}, 7)
	if diff := cmp.Diff(all, paged); diff != "" {
		t.Errorf("pages after the writers stopped differ from Audit (-want +got):\n%s", diff)
	}
}

// testPruneAudit: pruning deletes exactly the events older than before.
func testPruneAudit(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	for i := range 5 {
		if err := s.AppendAudit(ctx, store.AuditEvent{Time: t0.Add(time.Duration(i) * time.Hour), Action: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.PruneAudit(ctx, t0.Add(2*time.Hour))
	if err != nil || n != 2 {
		t.Fatalf("pruned %d, %v; want 2", n, err)
	}
	left, err := s.Audit(ctx, time.Time{})
	if err != nil || len(left) != 3 || !left[0].Time.Equal(t0.Add(2*time.Hour)) {
		t.Fatalf("left %v, %v", left, err)
	}
}

// testBans: set, list, replace and remove bans.
func testBans(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	a := store.Ban{SPIFFEID: "spiffe://example.org/a", Reason: "r", At: t0, By: "admin"}
	b := store.Ban{SPIFFEID: "spiffe://example.org/b", At: t0, By: "admin"}
	for _, ban := range []store.Ban{a, b, a} {
		if err := s.SetBan(ctx, ban); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Bans(ctx)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(got, func(x, y store.Ban) int { return strings.Compare(x.SPIFFEID, y.SPIFFEID) })
	if diff := cmp.Diff([]store.Ban{a, b}, got); diff != "" {
		t.Errorf("bans (-want +got):\n%s", diff)
	}
	if err := s.RemoveBan(ctx, a.SPIFFEID); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveBan(ctx, a.SPIFFEID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("removing a ban twice: %v, want ErrNotFound", err)
	}
	if got, err := s.Bans(ctx); err != nil || len(got) != 1 || got[0].SPIFFEID != b.SPIFFEID {
		t.Errorf("bans after removal = %v, %v", got, err)
	}
}
