package client_test

import (
	"context"
	"errors"
	"log"
	"os"
	"time"

	"github.com/mogate/mogate/gateway/client"
)

// An app's backend: create a verification for the user's number, show
// the user what to text, and wait for the answer.
func ExampleNew() {
	c := client.New("https://mogate.example.com", os.Getenv("MOGATE_API_KEY"), nil)
	ctx := context.Background()
	v, err := c.Create(ctx, client.CreateRequest{
		Number:         "+14155550123", // the user's phone; leave it out for capture mode
		IdempotencyKey: "signup-42",    // a retry returns the same verification
	})
	var apiErr *client.Error
	if errors.As(err, &apiErr) { // 4xx or 5xx: the status and a stable error code
		log.Fatalf("mogate said %d %s (retry after %s)", apiErr.Status, apiErr.Code, apiErr.RetryAfter)
	} else if err != nil {
		log.Fatal(err)
	}
	log.Println(v.UI.Text)      // "Text 342214 to +1 415-555-0100 to verify your phone number."
	for v.Status == "pending" { // until verified, failed, expired or cancelled
		if v, err = c.Wait(ctx, v.ID, 30*time.Second); err != nil {
			log.Fatal(err)
		}
	}
	log.Printf("%s: %s %s", v.ID, v.Status, v.VerifiedNumber) // or act on the event instead
}
