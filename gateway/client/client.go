// Package client is a small typed client of mogate's native HTTP API
// (/v1): create, get, long-poll, cancel and list verifications, and the
// number pool. Every call takes a context and ends with it. VerifyEvent
// checks and decodes the events mogate posts to an app. It depends on the
// standard library only, so apps, the mogate CLI and tests share it.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client calls one mogate with one API key. Its methods are safe for
// concurrent use.
type Client struct {
	base string
	key  string
	hc   *http.Client
}

// New returns a client of the mogate at baseURL (scheme, host, optional
// path prefix) authenticating with apiKey. hc nil: a client whose
// requests end only with their context (a long-poll may take minutes).
func New(baseURL, apiKey string, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{}
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), key: apiKey, hc: hc}
}

// CreateRequest is the body of POST /v1/verifications. Number empty is
// capture mode; zero values are left out.
type CreateRequest struct {
	Number      string          `json:"number,omitempty"`
	Code        string          `json:"code,omitempty"`
	To          string          `json:"to,omitempty"`
	Country     string          `json:"country,omitempty"`
	Language    string          `json:"language,omitempty"`
	TTLSeconds  int             `json:"ttl_seconds,omitempty"`
	CallbackURL string          `json:"callback_url,omitempty"`
	RedirectURL string          `json:"redirect_url,omitempty"`
	Metadata    json.RawMessage `json:"metadata,omitempty"`
	// Channels asks for one route per channel (ChannelSMS, ChannelWhatsApp,
	// ChannelCall), in order; nil is the server's default, SMS only.
	Channels []string `json:"channels,omitempty"`
	// ClientCountry is where the app sees the user (ISO 3166-1 alpha-2),
	// for Signals.CountryMismatch.
	ClientCountry string `json:"client_country,omitempty"`
	// IdempotencyKey is sent as the Idempotency-Key header.
	IdempotencyKey string `json:"-"`
}

// Channels a route can take.
const (
	ChannelSMS      = "sms"
	ChannelWhatsApp = "whatsapp"
	ChannelCall     = "call"
)

// Route is one way to prove a verification: a message (or for ChannelCall
// a call) on Channel to the pool number To; URI starts it on the phone.
type Route struct {
	Channel string `json:"channel"`
	To      string `json:"to"`
	URI     string `json:"uri"`
}

// Signals are what mogate knows of the message that verified a
// verification (or failed it with reason line_type_rejected). A field the
// provider did not report is its zero value (a nil pointer for the
// booleans).
type Signals struct {
	Channel        string `json:"channel"`
	TimeToVerifyMS int64  `json:"time_to_verify_ms"` // from the create to the matching message
	Attempts       int    `json:"attempts"`          // wrong codes before
	SenderCountry  string `json:"sender_country"`    // ISO, from the provider or the number
	// CountryMismatch: the create's ClientCountry differs from
	// SenderCountry; nil unless both are known.
	CountryMismatch *bool  `json:"country_mismatch"`
	LineType        string `json:"line_type"` // mobile, landline, voip, toll_free, other
	Carrier         string `json:"carrier"`
	Attestation     string `json:"attestation"` // STIR/SHAKEN of a call: "A"
	Forwarded       *bool  `json:"forwarded"`   // WhatsApp only
	// SenderSessions24h counts this API key's verifications of the same
	// sender in the 24 hours before.
	SenderSessions24h int `json:"sender_sessions_24h"`
}

// UI is what to show the user.
type UI struct {
	Text     string `json:"text"`
	SMSURI   string `json:"sms_uri"`
	QRPNGURL string `json:"qr_png_url"`
	PageURL  string `json:"page_url"`
	// WhatsAppURI and CallURI are the links of the whatsapp and call
	// routes; "" without one.
	WhatsAppURI string `json:"whatsapp_uri"`
	CallURI     string `json:"call_uri"`
}

// Verification is a verification as the API shows it; a null field of the
// answer is the zero value.
type Verification struct {
	ID             string          `json:"id"`
	Object         string          `json:"object"` // "verification"
	Status         string          `json:"status"` // pending, verified, expired, cancelled, failed
	Number         string          `json:"number"` // "" in capture mode
	Code           string          `json:"code"`
	To             string          `json:"to"`
	Language       string          `json:"language"`
	ExpiresAt      time.Time       `json:"expires_at"`
	CreatedAt      time.Time       `json:"created_at"`
	CallbackURL    string          `json:"callback_url"`
	RedirectURL    string          `json:"redirect_url"`
	UI             UI              `json:"ui"`
	Metadata       json.RawMessage `json:"metadata"`
	VerifiedNumber string          `json:"verified_number"`
	VerifiedAt     *time.Time      `json:"verified_at"`
	Attempts       int             `json:"attempts"`
	MaxAttempts    int             `json:"max_attempts"`
	Provider       string          `json:"provider"`
	MessageID      string          `json:"message_id"`
	// Reason says why a final status other than verified: superseded,
	// cancelled_by_api, max_attempts, expired or line_type_rejected.
	Reason string `json:"reason"`
	// Routes are the verification's routes; nil when its one route is SMS
	// to To.
	Routes []Route `json:"routes"`
	// Channel and RouteTo are the route of the message that verified the
	// verification (or failed it by policy), Signals what mogate knows of
	// it; zero otherwise.
	Channel string   `json:"channel"`
	RouteTo string   `json:"route_to"`
	Signals *Signals `json:"signals"`
}

// Number is one number of the pool (GET /v1/numbers).
type Number struct {
	Number    string   `json:"number"`
	Human     string   `json:"human"`
	Provider  string   `json:"provider"` // the provider entry's name
	Country   string   `json:"country"`
	Countries []string `json:"countries"`
	Channels  []string `json:"channels"` // sms, whatsapp, call
	Weight    float64  `json:"weight"`
	Health    string   `json:"health"`
	Pending   int      `json:"pending"`
}

// Error is an answer other than 2xx: its status and the API's stable error
// code and message.
type Error struct {
	Status     int
	Code       string
	Message    string
	RetryAfter time.Duration // from Retry-After; 0 when absent
}

func (e *Error) Error() string {
	return fmt.Sprintf("mogate: %d %s: %s", e.Status, e.Code, e.Message)
}

// IsNotFound reports whether err is a 404 answer.
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == http.StatusNotFound
}

// Create creates a verification.
func (c *Client) Create(ctx context.Context, req CreateRequest) (Verification, error) {
	var v Verification
	b, err := json.Marshal(req)
	if err != nil {
		return v, err
	}
	h := http.Header{}
	if req.IdempotencyKey != "" {
		h.Set("Idempotency-Key", req.IdempotencyKey)
	}
	return v, c.do(ctx, http.MethodPost, "/v1/verifications", b, h, &v)
}

// Get returns a verification.
func (c *Client) Get(ctx context.Context, id string) (Verification, error) {
	var v Verification
	return v, c.do(ctx, http.MethodGet, "/v1/verifications/"+url.PathEscape(id), nil, nil, &v)
}

// Wait long-polls a pending verification for at most d (up to the
// server's 2 minutes) and returns it when its status changed or d ran out.
func (c *Client) Wait(ctx context.Context, id string, d time.Duration) (Verification, error) {
	var v Verification
	q := "?wait=" + url.QueryEscape(d.Round(time.Second).String())
	return v, c.do(ctx, http.MethodGet, "/v1/verifications/"+url.PathEscape(id)+q, nil, nil, &v)
}

// Cancel cancels a pending verification (a 409 not_pending otherwise).
func (c *Client) Cancel(ctx context.Context, id string) (Verification, error) {
	var v Verification
	return v, c.do(ctx, http.MethodPost, "/v1/verifications/"+url.PathEscape(id)+"/cancel", nil, nil, &v)
}

// Pending returns this key's pending verifications that expect a message
// from sender (E.164).
func (c *Client) Pending(ctx context.Context, sender string) ([]Verification, error) {
	var l struct{ Data []Verification }
	err := c.do(ctx, http.MethodGet, "/v1/verifications?status=pending&number="+url.QueryEscape(sender), nil, nil, &l)
	return l.Data, err
}

// Numbers returns the number pool.
func (c *Client) Numbers(ctx context.Context) ([]Number, error) {
	var l struct{ Data []Number }
	err := c.do(ctx, http.MethodGet, "/v1/numbers", nil, nil, &l)
	return l.Data, err
}

// do sends one request and decodes a 2xx JSON answer into out, or returns
// an *Error.
func (c *Client) do(ctx context.Context, method, path string, body []byte, h http.Header, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	for k, v := range h {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		e := &Error{Status: resp.StatusCode}
		var eb struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(b, &eb) == nil && eb.Error.Code != "" {
			e.Code, e.Message = eb.Error.Code, eb.Error.Message
		} else {
			e.Code, e.Message = "http_"+strconv.Itoa(resp.StatusCode), strings.TrimSpace(string(b[:min(len(b), 200)]))
		}
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
			e.RetryAfter = time.Duration(s) * time.Second
		}
		return e
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("mogate: %s %s: undecodable answer: %w", method, path, err)
	}
	return nil
}
