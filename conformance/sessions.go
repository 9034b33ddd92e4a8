package conformance

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// senders returns the distinct (sender, receiving number, channel) of the
// expected events, as the gateway resolves them: one verification each,
// on a route of the event's channel ("" for sms).
func senders(f Fixture) [][3]string {
	var out [][3]string
	for _, e := range f.Expect.Events {
		if e.SenderHidden {
			continue // it verifies nothing: no verification to expect
		}
		from, to := e.From, receiver(f, e)
		if e.VerifiedNumber != "" {
			from = e.VerifiedNumber
		}
		ch := e.Channel
		if ch == "sms" {
			ch = ""
		}
		p := [3]string{from, to, ch}
		if !containsPair(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// hiddenTarget is the receiving number of a fixture whose events all come
// from hidden senders (a WhatsApp username), all to one number; "" for any
// other fixture. The runner puts a capture verification there and sends
// its code: the hidden sender must not verify it.
func hiddenTarget(f Fixture) string {
	to := ""
	for _, e := range f.Expect.Events {
		switch r := receiver(f, e); {
		case !e.SenderHidden, to != "" && r != to:
			return ""
		default:
			to = r
		}
	}
	return to
}

// receiver is the pool number an event is for: its to; the number of its
// to_id; else (the payload lacks it) the provider entry's number.
func receiver(f Fixture, e Event) string {
	switch {
	case e.To != "":
		return e.To
	case e.ToID != "":
		return f.NumberIDs[e.ToID]
	case len(f.Numbers) > 0:
		return f.Numbers[0]
	}
	return ""
}

func containsPair(ps [][3]string, p [3]string) bool {
	for _, q := range ps {
		if q == p {
			return true
		}
	}
	return false
}

// createPaced creates a verification, waiting out a 429 of a per-second
// limit (Retry-After up to maxPace); a longer one is ErrLimited, naming the
// limit the target gave.
func createPaced(ctx context.Context, t Target, body map[string]any) (int, verification, error) {
	status, ver, err := t.api(ctx, "POST", "/v1/verifications", body)
	for err == nil && status == http.StatusTooManyRequests && ver.retryAfter > 0 && ver.retryAfter <= maxPace {
		select {
		case <-ctx.Done():
			return 0, ver, ctx.Err()
		case <-time.After(ver.retryAfter):
		}
		status, ver, err = t.api(ctx, "POST", "/v1/verifications", body)
	}
	if err == nil && status == http.StatusTooManyRequests {
		err = fmt.Errorf("%w: %s (Retry-After %s): raise that limit of the target for the run, or run fewer providers (--provider)", ErrLimited, ver.Error.Message, ver.retryAfter)
	}
	return status, ver, err
}

// createVerifications creates one verification per sender of f, marked
// {"conformance": true} in its metadata, and returns their ids and the
// target's public_url as their page_url shows it. A 429 of a per-second
// limit is waited out (the runner paces itself); a longer one stops the
// run with the limit the target named.
func createVerifications(ctx context.Context, t Target, f Fixture, v vars) (ids []string, publicURL string, err error) {
	for _, p := range senders(f) {
		body := map[string]any{"number": p[0], "to": p[1], "code": v["code"], "ttl_seconds": 600, "metadata": map[string]any{"conformance": true}}
		if p[2] != "" {
			body["channels"] = []string{p[2]} // a route of the event's channel on its number
		}
		status, ver, err := createPaced(ctx, t, body)
		if err != nil {
			return nil, "", err
		}
		if status != 201 {
			return nil, "", fmt.Errorf("creating the verification for %s -> %s answered %d %s: %s", p[0], p[1], status, ver.Error.Code, ver.Error.Message)
		}
		ids = append(ids, ver.ID)
		publicURL = publicBase(ver.UI.PageURL)
	}
	if to := hiddenTarget(f); to != "" {
		status, ver, err := createPaced(ctx, t, map[string]any{"to": to, "ttl_seconds": 600, "metadata": map[string]any{"conformance": true}})
		if err != nil {
			return nil, "", err
		}
		if status != 201 || ver.Code == "" {
			return nil, "", fmt.Errorf("creating a capture verification on %s answered %d %s: %s", to, status, ver.Error.Code, ver.Error.Message)
		}
		v["code"] = ver.Code // the requests carry it: a hidden sender must not verify it
		ids = append(ids, ver.ID)
		publicURL = publicBase(ver.UI.PageURL)
	}
	return ids, publicURL, nil
}

func expectVerified(ctx context.Context, t Target, f Fixture, v vars, ids []string) error {
	ss := senders(f)
	for _, id := range ids[len(ss):] { // the capture verification of hidden senders
		_, ver, err := t.api(ctx, "GET", "/v1/verifications/"+id, nil)
		if err != nil {
			return err
		}
		if ver.Status != "pending" {
			return fmt.Errorf("a hidden sender's message changed the capture verification to %s (verified_number %q)", ver.Status, ver.VerifiedNumber)
		}
	}
	for i, p := range ss {
		_, ver, err := t.api(ctx, "GET", "/v1/verifications/"+ids[i], nil)
		if err != nil {
			return err
		}
		if ver.Status != "verified" || ver.VerifiedNumber != p[0] {
			return fmt.Errorf("verification for %s is %s (verified_number %q), want verified", p[0], ver.Status, ver.VerifiedNumber)
		}
	}
	return nil
}

// expectPending checks that the verifications ids are still pending.
func expectPending(ctx context.Context, t Target, ids []string) error {
	for _, id := range ids {
		_, ver, err := t.api(ctx, "GET", "/v1/verifications/"+id, nil)
		if err != nil {
			return err
		}
		if ver.Status != "pending" {
			return fmt.Errorf("verification %s is %s, want pending: the fixture's events verify nothing", id, ver.Status)
		}
	}
	return nil
}

// expectBody checks the answer to the i-th request of f against the
// fixture's expected body, when it names one (for the last request).
func expectBody(f Fixture, i int, rp reply) error {
	if f.Expect.Body == nil || i != len(f.Requests)-1 || rp.body == *f.Expect.Body {
		return nil
	}
	return fmt.Errorf("answered %.200q, want %.200q", rp.body, *f.Expect.Body)
}

func snapshot(ctx context.Context, t Target, ids []string) []verification {
	var out []verification
	for _, id := range ids {
		_, v, _ := t.api(ctx, "GET", "/v1/verifications/"+id, nil)
		out = append(out, v)
	}
	return out
}

// cancelPending cancels the verifications the runner created that are
// still pending, so that none is left for the target's retention.
func cancelPending(ctx context.Context, t Target, ids []string) {
	for _, id := range ids {
		_, _, _ = t.api(ctx, "POST", "/v1/verifications/"+id+"/cancel", nil)
	}
}
