package matcher

import (
	"slices"
	"time"

	"github.com/mogate/mogate/matcher/text"
)

// The code rules every store applies when it creates a session (the text
// rules themselves are package text).
const (
	// MaxCodeLen is the longest code, in normalized characters.
	MaxCodeLen = text.MaxCodeLen
	// MinCaptureCodeLen is the shortest code of a capture session: the
	// code alone identifies the session, so it is generated, at least this
	// long.
	MinCaptureCodeLen = text.MinCaptureCodeLen
)

// The defaults of a store's options, the same for every store.
const (
	DefaultMaxAttempts = 3              // attempts a session allows
	DefaultCodeLength  = 6              // digits of a generated code
	DefaultRetention   = 24 * time.Hour // how long finished sessions and processed message ids are kept
)

// CreateRequest describes a new session. Every store creates by the same
// rules: with an Idempotency-Key already used by the same API key, Create
// returns the first session (replayed) or ErrIdempotencyReused when the
// request differs (ReqHash). A pending expected-sender session of the same
// API key, sender and number is cancelled as superseded; other keys'
// sessions are left alone. A capture session's code is always generated
// (ErrCodeNotAllowed otherwise), at least MinCaptureCodeLen digits; a code
// that does not normalize is ErrInvalidCode, one pending on the same
// number ErrCodeInUse. IDPrefix must be one of IDPrefixes.
type CreateRequest struct {
	Key         string
	API         string
	IDPrefix    string // "vrf_" when empty
	Number      string // expected sender (E.164) or "" for capture mode
	Code        string // "" to generate one
	To          string
	Country     string
	TTL         time.Duration
	Language    string
	Callback    string
	Redirect    string
	Metadata    []byte
	MaxAttempts int // 0: the matcher's default
	IdemKey     string
	ReqHash     string
	// Routes has one route per channel asked for; empty means
	// [{ChannelSMS, To}]. When set, To == Routes[0].To.
	Routes []Route
	// ClientCountry is where the app sees the user (ISO code), for the
	// risk signals.
	ClientCountry string
}

// idPrefixes are the id prefixes sessions may have; CreateRequest.IDPrefix
// must be one of them.
var idPrefixes = []string{"vrf_", "r_otp_"}

// IDPrefixes returns the id prefixes a CreateRequest.IDPrefix may be, in a
// fixed order (a store may keep a prefix as its index).
func IDPrefixes() []string { return slices.Clone(idPrefixes) }
