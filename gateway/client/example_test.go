package client_test

import (
	"io"
	"log"
	"net/http"
	"os"

	"github.com/mogate/mogate/gateway/client"
)

// An app's handler of mogate's events: read the raw body, verify it with
// the API key's webhook_secret, act once per event id, answer 2xx.
func ExampleVerifyEvent() {
	secret := os.Getenv("MOGATE_WEBHOOK_SECRET") // the API key's webhook_secret: whsec_…
	http.HandleFunc("POST /hooks/mogate", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "cannot read the body", http.StatusBadRequest)
			return
		}
		ev, err := client.VerifyEvent(secret, r.Header, body)
		if err != nil { // ErrNoSignature, ErrBadSignature, ErrStale, ...
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		// mogate delivers at least once: a retry has the same ev.ID, so
		// record the ids handled and skip those seen before.
		switch ev.Type {
		case client.EventVerified:
			log.Printf("verification %s: %s proved the number", ev.Verification.ID, ev.Verification.VerifiedNumber)
		case client.EventExpired, client.EventFailed, client.EventCancelled:
			log.Printf("verification %s ended: %s (%s)", ev.Verification.ID, ev.Verification.Status, ev.Verification.Reason)
		case client.EventUnmatched:
			log.Printf("a message from %s matched nothing", ev.Unmatched.From)
		case client.EventOTPReverseVerified: // sessions created through /otp/reverse/initiate
			log.Printf("otp %s verified", ev.OTP.OTPID)
		}
		w.WriteHeader(http.StatusNoContent)
	})
}
