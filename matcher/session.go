package matcher

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"slices"
	"time"
)

// Status is a session's state. Pending is the only non-final one.
type Status uint8

// Statuses, in the order of their wire values.
const (
	Pending Status = iota
	Verified
	Expired
	Cancelled
	Failed
)

var statusNames = [...]string{"pending", "verified", "expired", "cancelled", "failed"}

func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return "unknown"
}

// Final reports whether the status can no longer change.
func (s Status) Final() bool { return s != Pending }

// MarshalText renders the status name.
func (s Status) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Session is one verification. A session with Number set expects the code
// from that sender (key: To, Number); one without is a capture session that
// the code alone identifies (key: To, code) and whose sender mogate learns.
type Session struct {
	ID        string
	Key       string // name of the API key that owns it
	API       string // "v1" or "contiguity": which API created it
	Number    string // expected sender, E.164; "" in capture mode
	Code      string // the code as shown to the user
	To        string // receiving pool number
	Country   string
	Language  string
	Callback  string
	Redirect  string
	Metadata  []byte // JSON object, echoed back
	PageToken string
	IdemKey   string
	ReqHash   string // hash of the create request, to refuse a reused Idempotency-Key

	MaxAttempts int
	CreatedAt   time.Time
	ExpiresAt   time.Time

	Status         Status
	Attempts       int
	VerifiedNumber string
	FinishedAt     time.Time // when the status became final
	Provider       string    // of the message that verified or failed it
	MessageID      string
	Reason         string // why a final status other than verified: one of the Reason constants
	// Notified says whether the app was told of the final status.
	Notified Notified

	// Routes are where the session can be proven: one per channel asked
	// for, always at least one after Create. A session written before routes
	// existed reads as [{sms, To}].
	Routes []Route
	// ClientCountry is where the app sees the user (ISO code), as given on
	// create; "" when not given.
	ClientCountry string
	// Via is the route of the message that verified the session or failed
	// it by policy (RejectReason); zero otherwise.
	Via Route
	// Signals are what the message that verified the session (or failed it
	// by policy) told of its sender; zero otherwise.
	Signals Signals
}

// Channels a route can take.
const (
	ChannelSMS      = "sms"
	ChannelWhatsApp = "whatsapp"
	ChannelCall     = "call"
)

// Route is one way to prove a session: a message on Channel to the pool
// number To.
type Route struct {
	Channel string // ChannelSMS, ChannelWhatsApp or ChannelCall
	To      string // receiving pool number, E.164
}

// Signals are recorded when a message verifies a session (or fails it by
// policy): what the message said of its sender, and how many sessions the
// same sender verified lately.
type Signals struct {
	LineType      string // normalised line type the provider reported ("mobile", "voip", …)
	Carrier       string // the sender's carrier, as the provider named it
	SenderCountry string // ISO country of the sender's number
	Attestation   string // STIR/SHAKEN attestation of a call ("A")
	Forwarded     bool   // the message was forwarded (WhatsApp)
	// SenderSessions24h is how many sessions of the same API key were
	// verified for the same verified sender in the 24 h before this one,
	// counted by the store (across replicas for a shared store).
	SenderSessions24h int
}

// Notified is the state of the event that tells the app a final status.
type Notified uint8

// Notification states.
const (
	NotNotified Notified = iota // pending (or nothing to deliver)
	Delivered                   // a receiver accepted it
	Dead                        // retries ran out
)

// Reasons of the final statuses other than verified (docs/api.md). Every
// store records them and the API shows them as they are.
const (
	ReasonCancelledByAPI = "cancelled_by_api" // Cancelled: the app cancelled it
	ReasonSuperseded     = "superseded"       // Cancelled: a newer session of the same key for the same (to, sender)
	ReasonMaxAttempts    = "max_attempts"     // Failed: the last allowed attempt was wrong
	ReasonExpired        = "expired"          // Expired: the TTL ran out
	// ReasonLineTypeRejected: Failed: the message that would have verified
	// the session came from a line type the policy refuses.
	ReasonLineTypeRejected = "line_type_rejected"
)

// Reason returns the reason of a session in status st whose stored reason
// is r: "" for pending and verified, the one reason of expired, for failed
// line_type_rejected or else max_attempts, and for cancelled superseded or
// cancelled_by_api (what records written before the reasons grew, which say
// "cancelled", mean).
func Reason(st Status, r string) string {
	switch st {
	case Expired:
		return ReasonExpired
	case Failed:
		if r == ReasonLineTypeRejected {
			return ReasonLineTypeRejected
		}
		return ReasonMaxAttempts
	case Cancelled:
		if r == ReasonSuperseded {
			return ReasonSuperseded
		}
		return ReasonCancelledByAPI
	}
	return ""
}

// Capture reports whether the session is in capture mode.
func (s *Session) Capture() bool { return s.Number == "" }

// UnmatchedEvent is a message.unmatched event waiting for delivery to the
// API key Key.
type UnmatchedEvent struct {
	ID      string // evt_…, derived from the message and the key
	Key     string
	Message Message
	At      time.Time
}

// EventID is the deterministic id of a session's final-status event: every
// store derives it the same way, so a redelivery carries the same id.
func EventID(sessionID string, status Status) string {
	sum := sha256.Sum256([]byte(sessionID + "|" + status.String()))
	return "evt_" + hex.EncodeToString(sum[:12])
}

// UnmatchedEventID is the deterministic id of the message.unmatched event of
// a provider message for an API key.
func UnmatchedEventID(provider, messageID, key string) string {
	sum := sha256.Sum256([]byte(provider + "\x00" + messageID + "\x00" + key))
	return "evt_" + hex.EncodeToString(sum[:12])
}

// Errors of the matcher.
var (
	ErrNotFound          = errors.New("matcher: no such verification")
	ErrNotPending        = errors.New("matcher: verification is no longer pending")
	ErrCodeInUse         = errors.New("matcher: code already pending on that number")
	ErrInvalidCode       = errors.New("matcher: code must be letters, digits and separators, at most 16 characters")
	ErrIdempotencyReused = errors.New("matcher: Idempotency-Key reused with a different request")
	ErrCodeNotAllowed    = errors.New("matcher: a capture-mode verification takes no code; mogate generates it")
)

// ValidIDPrefix reports whether p may be a CreateRequest.IDPrefix.
func ValidIDPrefix(p string) bool { return slices.Contains(idPrefixes, p) }
