package gateway

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/mogate/mogate/adapters"
)

// budgetNumbers are the four Twilio numbers of budgetYAML.
var budgetNumbers = []string{"+14155550100", "+14155550101", "+14155550102", "+14155550103"}

// budgetYAML is the test configuration with four Twilio numbers and the
// given per-sender budgets (0: unlimited).
func budgetYAML(guesses, unmatched int) string {
	first := `  - {number: "+14155550100", provider: twilio}` + "\n"
	more := first
	for _, n := range budgetNumbers[1:] {
		more += `  - {number: "` + n + `", provider: twilio}` + "\n"
	}
	y := strings.Replace(testYAML, first, more, 1)
	return strings.Replace(y, "unmatched_per_sender_per_hour: 5",
		fmt.Sprintf("unmatched_per_sender_per_hour: %d\n  capture_guesses_per_sender_per_hour: %d", unmatched, guesses), 1)
}

// flood sends every request at once, each from its own goroutine, spread
// over the gateways, and fails the test unless every one is answered 200.
func flood(t *testing.T, hs []*harness, reqs []*adapters.Request) {
	t.Helper()
	start := make(chan struct{})
	codes := make([]int, len(reqs))
	var wg sync.WaitGroup
	for i, r := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			codes[i] = hs[i%len(hs)].send(r).Code
		}()
	}
	close(start)
	wg.Wait()
	for i, c := range codes {
		if c != 200 {
			t.Fatalf("message %d = %d", i, c)
		}
	}
}

const guesser = "+33698765432"

// checkGuessFlood: 40 messages of one sender at once, to four numbers,
// each the right code of its own capture session, with a budget of 10
// guesses: exactly 10 sessions are verified, however the gateways
// interleave them.
func checkGuessFlood(t *testing.T, hs ...*harness) {
	var ids []string
	var reqs []*adapters.Request
	for i := range 40 {
		to := budgetNumbers[i%len(budgetNumbers)]
		v := hs[0].mustCreate(`{"to": "` + to + `"}`)
		ids = append(ids, v["id"].(string))
		reqs = append(reqs, hs[0].signed("twilio", adapters.Inbound{From: guesser, To: to, Text: v["code"].(string)}))
	}
	flood(t, hs, reqs)
	verified := 0
	for _, id := range ids {
		if hs[0].get(id)["status"] == "verified" {
			verified++
		}
	}
	if verified != 10 {
		t.Fatalf("%d capture sessions verified by 40 concurrent guesses with a budget of 10", verified)
	}
}

// checkUnmatchedFlood: 40 wrong codes of one sender at once, to four
// numbers, with an unmatched budget of 10 (and unlimited guesses): 10 of
// them are tried against capture sessions, the others are not, and the
// right code afterwards is refused.
func checkUnmatchedFlood(t *testing.T, hs ...*harness) {
	var reqs []*adapters.Request
	for i := range 40 {
		reqs = append(reqs, hs[0].signed("twilio", adapters.Inbound{From: guesser, To: budgetNumbers[i%len(budgetNumbers)], Text: fmt.Sprintf("%06d", i)}))
	}
	flood(t, hs, reqs)
	tried, lines := 0, 0
	for _, h := range hs {
		for line := range strings.Lines(h.logs.String()) {
			if strings.Contains(line, `"msg":"unmatched message"`) {
				lines++
				if strings.Contains(line, `"capture_blocked":false`) {
					tried++
				}
			}
		}
	}
	if lines != 40 || tried != 10 {
		t.Fatalf("%d of %d unmatched messages tried against capture sessions with an unmatched budget of 10", tried, lines)
	}
	c := hs[0].mustCreate(`{"to": "` + budgetNumbers[1] + `"}`)
	hs[0].send(hs[0].signed("twilio", adapters.Inbound{From: guesser, To: budgetNumbers[1], Text: c["code"].(string)}))
	if got := hs[0].get(c["id"].(string)); got["status"] != "pending" {
		t.Fatalf("right code after the unmatched budget: %v", got)
	}
}

// checkChargedOnlyForGuesses: a charge the message does not need is given
// back. With 3 guesses and 2 unmatched messages: three codes matched by
// the sender's own sessions cost nothing, three deliveries of one wrong
// code cost one of each, a wrong code to the sender's own session one
// guess and no unmatched message; one guess is left, and its capture
// code verifies; the next is refused.
func checkChargedOnlyForGuesses(t *testing.T, hs ...*harness) {
	const sender = "+14155550123"
	h := func(i int) *harness { return hs[i%len(hs)] }
	for i := range 3 {
		v := h(i).mustCreate(`{"number": "` + sender + `", "to": "` + budgetNumbers[0] + `"}`)
		h(i).send(h(i).signed("twilio", adapters.Inbound{From: sender, To: budgetNumbers[0], Text: v["code"].(string)}))
		if got := h(i).get(v["id"].(string)); got["status"] != "verified" {
			t.Fatalf("own session %d: %v", i, got)
		}
	}
	miss := h(0).signed("twilio", adapters.Inbound{MessageID: "SMredelivered", From: sender, To: budgetNumbers[1], Text: "000000"})
	for i := range 3 {
		if w := h(i).send(miss); w.Code != 200 {
			t.Fatalf("delivery %d = %d", i, w.Code)
		}
	}
	own := h(1).mustCreate(`{"number": "` + sender + `", "to": "` + budgetNumbers[1] + `"}`)
	h(1).send(h(1).signed("twilio", adapters.Inbound{From: sender, To: budgetNumbers[1], Text: "000001"}))
	if got := h(1).get(own["id"].(string)); got["attempts"] != 1.0 {
		t.Fatalf("wrong code to the own session: %v", got)
	}
	for i, want := range []string{"verified", "pending"} {
		c := h(i).mustCreate(`{"to": "` + budgetNumbers[2+i] + `"}`)
		h(i).send(h(i).signed("twilio", adapters.Inbound{From: sender, To: budgetNumbers[2+i], Text: c["code"].(string)}))
		if got := h(i).get(c["id"].(string)); got["status"] != want {
			t.Fatalf("capture guess %d: %v, want %s", i+3, got["status"], want)
		}
	}
}

// logEveryUnmatched logs every unmatched message, unsampled, for the
// servers the test builds next.
func logEveryUnmatched(t *testing.T) {
	saved := unmatchedLogEvery
	t.Cleanup(func() { unmatchedLogEvery = saved })
	unmatchedLogEvery = 0
}

// The budgets hold per sender across receiving numbers on every store, and
// across replicas on a shared one.
func TestGuessBudgetAcrossNumbersUnderConcurrency(t *testing.T) {
	forEachStore(t, func(t *testing.T, st testStore) {
		checkGuessFlood(t, st.replicas(t, budgetYAML(10, 0))...)
	})
}

func TestUnmatchedBudgetAcrossNumbersUnderConcurrency(t *testing.T) {
	logEveryUnmatched(t)
	forEachStore(t, func(t *testing.T, st testStore) {
		checkUnmatchedFlood(t, st.replicas(t, budgetYAML(0, 10))...)
	})
}

func TestBudgetsChargedOnlyForGuesses(t *testing.T) {
	forEachStore(t, func(t *testing.T, st testStore) {
		checkChargedOnlyForGuesses(t, st.replicas(t, budgetYAML(3, 2))...)
	})
}

// TestOwnMatchTouchesNoBudget: on the memory store the code of the
// sender's own session, and its redelivery, never reach the sender's
// unmatched budget: no bucket is made for the sender (before, each such
// message charged one and gave it back, and the bucket stayed for an
// hour: one per verified sender).
func TestOwnMatchTouchesNoBudget(t *testing.T) {
	h := newHarness(t, testYAML)
	v := h.mustCreate(`{"number": "+14155550123", "to": "+14155550100"}`)
	msg := h.signed("twilio", adapters.Inbound{MessageID: "SMown", From: "+14155550123", To: "+14155550100", Text: v["code"].(string)})
	for range 2 {
		if w := h.send(msg); w.Code != 200 {
			t.Fatalf("own code = %d %s", w.Code, w.Body)
		}
	}
	if got := h.get(v["id"].(string)); got["status"] != "verified" {
		t.Fatalf("session = %v", got)
	}
	l := h.s.live().unmatchedLimit.(*limiter)
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := len(l.buckets); n != 0 {
		t.Fatalf("%d budget buckets after an own match, want 0", n)
	}
}
