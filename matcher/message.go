package matcher

// Message is an inbound message (or call) as the matcher sees it: numbers
// in E.164.
type Message struct {
	Provider, MessageID string
	From, To, Text      string
	// Channel is the channel it came on: ChannelSMS ("" means sms),
	// ChannelWhatsApp or ChannelCall. A message considers only pending
	// sessions with a route {Channel, To}; a call has no code, never
	// counts an attempt, never tries a capture session, and verifies only
	// when its Attestation is "A" and exactly one pending expected-sender
	// session of From, across all API keys, has a call route on To: with
	// two or more it cannot say which one the caller meant, and verifies
	// none (outcome Unmatched, recorded like any message).
	Channel string
	// LineType, Carrier, SenderCountry and Attestation are what the provider
	// (or the gateway) told of the sender; Forwarded that the message was
	// forwarded. The session they verify records them in its Signals.
	// Attestation is a call's STIR/SHAKEN attestation: a call without "A"
	// is recorded as processed (deduplicated on (Provider, MessageID), so a
	// redelivery claiming "A" is a Duplicate) with outcome Unmatched, and
	// changes nothing else: no attempt, no capture guess, no budget, no
	// message.unmatched event (IngestOptions.UnmatchedKeys are ignored).
	LineType, Carrier, SenderCountry, Attestation string
	Forwarded                                     bool
	// RejectReason, when set, makes a message that would verify a session
	// fail it instead: status Failed with this Reason (the gateway sets
	// ReasonLineTypeRejected from its policy).
	RejectReason string
	// Parts, Part and PartsRef describe one part of a message delivered in
	// pieces; Parts <= 1 or PartsRef == "" means a whole message.
	Parts, Part int
	PartsRef    string
}

// OutcomeKind says what a message did.
type OutcomeKind uint8

// Outcomes of Ingest.
const (
	Unmatched  OutcomeKind = iota // matched nothing
	Matched                       // verified SessionID
	Attempted                     // a wrong code from SessionID's expected sender
	Exhausted                     // that wrong code was the last allowed: SessionID failed
	PartStored                    // one part of a multipart message, kept until all arrive
	NonceSpent                    // not a message: a provider request nonce (SpendNonce)
)

var outcomeNames = [...]string{"unmatched", "verified", "attempt", "failed", "part", "nonce"}

func (k OutcomeKind) String() string { return outcomeNames[k] }

// Outcome is the result of ingesting a message.
type Outcome struct {
	Kind      OutcomeKind
	SessionID string
	// Duplicate is true when the provider message was already processed;
	// the outcome is the one of the first delivery and nothing changed.
	Duplicate bool
	// CaptureTried is true when the message was tried against capture
	// sessions, and so spent one of its sender's capture guesses;
	// CaptureRefused when the sender had none left.
	CaptureTried, CaptureRefused bool
	// NeedsBudget answers an Ingest with OwnFirst: the message would go
	// on to capture matching, so nothing was recorded (no dedupe record,
	// no part stored, no attempt); Kind is Unmatched and means nothing.
	// The caller charges the sender's budgets and ingests it again
	// without OwnFirst. Such an outcome is never recorded, so it has no
	// place in an encoded one (the golden recoveries of
	// matcher/memstore/golden_test.go compare outcomes as JSON).
	NeedsBudget bool `json:"-"`
}

// IngestOptions tune one Ingest call.
type IngestOptions struct {
	// NoCapture skips capture sessions: the sender has sent too many
	// unmatched messages, and could be guessing codes.
	NoCapture bool
	// UnmatchedKeys are the API keys told of the message, should it match
	// nothing (a message.unmatched event each, journaled with the outcome).
	UnmatchedKeys []string
	// OwnFirst records the message only when no capture matching is
	// needed to decide it: a duplicate, a match of the sender's own
	// pending session, or, when capture matching is off for it
	// (NoCapture, or a call), any outcome, as without OwnFirst. A message
	// that capture matching could reach (one whose own sessions it does
	// not verify, or a part that completes a multipart message, whatever
	// its text) records no outcome and comes back with
	// Outcome.NeedsBudget; the completing part may be stored again with
	// the others (idempotent: the next call finds it). So the caller
	// charges a sender's budgets only for the messages that spend them
	// (gateway/webhooks.go ingest).
	OwnFirst bool
}
