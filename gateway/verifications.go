package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"github.com/mogate/mogate/config"
	"github.com/mogate/mogate/matcher"
	"github.com/mogate/mogate/pool"
)

// maxBody bounds every request body: API and webhooks alike.
const maxBody = 64 << 10

// maxWait bounds ?wait= long-polls.
const maxWait = 2 * time.Minute

// createParams is a create request from either API.
type createParams struct {
	API, IDPrefix      string
	Number             string // as sent; "" for capture mode
	Code               string
	To                 string
	Country            string
	Language           string
	TTLSeconds         *int
	Callback, Redirect string
	Metadata           json.RawMessage
	IdemKey            string
	RawBody            []byte
	// Channels as asked for; nil: not named (one route, as before routes).
	Channels      []string
	ClientCountry string
}

// readBody reads at most maxBody bytes or fails with 413. A body stated
// within the limit is bounded by net/http to its stated length and read
// as it is; any other through http.MaxBytesReader. readAll bounds both (a handler
// wrapped in middleware that replaced the body reads no more either).
func readBody(c *gin.Context) ([]byte, error) {
	var r io.Reader = c.Request.Body
	if n := c.Request.ContentLength; n < 0 || n > maxBody {
		r = http.MaxBytesReader(c.Writer, c.Request.Body, maxBody)
	}
	b, err := readAll(r, c.Request.ContentLength, maxBody)
	if err == nil {
		return b, nil
	}
	if tooLarge := (*http.MaxBytesError)(nil); errors.As(err, &tooLarge) {
		return nil, errorf(http.StatusRequestEntityTooLarge, "body_too_large", "the body exceeds %d bytes", maxBody)
	}
	return nil, errorf(http.StatusBadRequest, "bad_body", "could not read the body")
}

// maxPresized bounds what readAll reserves on a stated Content-Length.
const maxPresized = 8 << 10

// readAll is io.ReadAll with its buffer sized from the Content-Length the
// request states (one byte more, so that the read that finds the end needs
// no room), not grown from 512 bytes by copying, and bounded: past limit
// bytes it stops with an *http.MaxBytesError. The size is the client's
// word, before any byte arrived or any signature was checked: at most
// maxPresized is reserved on it (a webhook is far smaller), so that
// connections that state a large body and send nothing hold little.
func readAll(r io.Reader, size, limit int64) ([]byte, error) {
	if size < 0 || size > limit {
		size = 511 // unstated: io.ReadAll's first 512 bytes
	}
	b := make([]byte, 0, min(size, maxPresized)+1)
	for {
		n, err := r.Read(b[len(b):min(int64(cap(b)), limit+1)]) // one byte past the limit says it is passed
		b = b[:len(b)+n]
		if int64(len(b)) > limit {
			return b[:limit], &http.MaxBytesError{Limit: limit}
		}
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)] // a body longer than it said: room to go on
		}
	}
}

// decodeJSON reads a JSON object body into v, refusing unknown fields.
func decodeJSON(c *gin.Context, v any) ([]byte, error) {
	b, err := readBody(c)
	if err != nil {
		return nil, err
	}
	if bytes.Equal(bytes.Trim(b, " \t\r\n"), []byte("null")) {
		return nil, errorf(http.StatusBadRequest, "invalid_json", "the body must be a JSON object, not null")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		msg := "the body must be a JSON object"
		if strings.HasPrefix(err.Error(), "json: unknown field") {
			msg = strings.TrimPrefix(err.Error(), "json: ")
		} else if ute := (*json.UnmarshalTypeError)(nil); errors.As(err, &ute) {
			msg = "field " + strconv.Quote(ute.Field) + " has the wrong type"
		}
		return nil, errorf(http.StatusBadRequest, "invalid_json", "%s", msg)
	}
	if dec.More() {
		return nil, errorf(http.StatusBadRequest, "invalid_json", "the body must hold one JSON object")
	}
	return b, nil
}

// create validates p, applies the limits, picks a number and makes the session.
func (s *Server) create(c *gin.Context, p createParams) (matcher.Session, bool, error) {
	key := apiKey(c)
	rt := s.live()
	req := matcher.CreateRequest{
		Key: key.Name, API: p.API, IDPrefix: p.IDPrefix, Language: language(p.Language), IdemKey: p.IdemKey,
		Country: strings.ToUpper(strings.TrimSpace(p.Country)),
	}
	if p.Number != "" {
		n, err := pool.Normalize(p.Number)
		if err != nil {
			return matcher.Session{}, false, err
		}
		req.Number = n
	}
	if utf8.RuneCountInString(p.Code) > matcher.MaxCodeLen {
		return matcher.Session{}, false, errorf(http.StatusUnprocessableEntity, "invalid_code", "code must be at most %d characters", matcher.MaxCodeLen)
	}
	req.Code = strings.TrimSpace(p.Code)
	req.TTL = s.cfg.Verification.TTL
	if p.TTLSeconds != nil {
		if *p.TTLSeconds < 1 || *p.TTLSeconds > 86400 {
			return matcher.Session{}, false, errorf(http.StatusUnprocessableEntity, "invalid_ttl", "ttl_seconds must be between 1 and 86400")
		}
		req.TTL = time.Duration(*p.TTLSeconds) * time.Second
	}
	if err := s.checkFields(p); err != nil {
		return matcher.Session{}, false, err
	}
	if err := checkChannels(p.Channels); err != nil {
		return matcher.Session{}, false, err
	}
	if p.ClientCountry != "" {
		cc := strings.ToUpper(strings.TrimSpace(p.ClientCountry))
		if !config.IsCountry(cc) {
			return matcher.Session{}, false, errorf(http.StatusUnprocessableEntity, "invalid_country", "client_country must be an ISO 3166-1 alpha-2 country code such as US, got %q", p.ClientCountry)
		}
		req.ClientCountry = cc
	}
	req.Callback, req.Redirect = p.Callback, p.Redirect
	if len(p.Metadata) > 0 && !bytes.Equal(bytes.TrimSpace(p.Metadata), []byte("null")) {
		if len(p.Metadata) > maxMetadataLen || bytes.TrimSpace(p.Metadata)[0] != '{' {
			return matcher.Session{}, false, errorf(http.StatusUnprocessableEntity, "invalid_metadata", "metadata must be a JSON object of at most 4 KiB")
		}
		var compact bytes.Buffer
		_ = json.Compact(&compact, p.Metadata)
		req.Metadata = compact.Bytes()
	}
	if p.IdemKey != "" {
		if len(p.IdemKey) > 255 {
			return matcher.Session{}, false, errorf(http.StatusBadRequest, "invalid_idempotency_key", "Idempotency-Key must be at most 255 characters")
		}
		sum := sha256.Sum256(append([]byte(p.API+"\x00"), p.RawBody...))
		req.ReqHash = hex.EncodeToString(sum[:])
		// A retry of a created session is answered before any limit.
		existing, ok, err := s.store.LookupIdempotent(c.Request.Context(), key.Name, p.IdemKey)
		if err != nil {
			return matcher.Session{}, false, s.storeErr("idempotency lookup", err)
		}
		if ok {
			if existing.ReqHash != req.ReqHash {
				return matcher.Session{}, false, matcher.ErrIdempotencyReused
			}
			return existing, true, nil
		}
	}
	if err := rt.createLimit.take(c.Request.Context(), key.Name, "verifications for this API key"); err != nil {
		return matcher.Session{}, false, err
	}
	if req.Number != "" {
		// Per (API key, sender): one tenant's creates never use up, or
		// reveal anything about, another's for the same user. An E.164
		// number holds no ":", so the key cannot be forged from a name.
		if err := rt.numberLimit.take(c.Request.Context(), key.Name+":"+req.Number, "verifications for this phone number"); err != nil {
			return matcher.Session{}, false, err
		}
	}
	var err error
	pinned := ""
	if p.To != "" {
		if pinned, err = pool.Normalize(p.To); err != nil {
			return matcher.Session{}, false, withMessage(pool.ErrNotInPool, "to must be one of this deployment's numbers in E.164 (see GET /v1/numbers)")
		}
	}
	n, err := s.assignRoutes(c.Request.Context(), rt.pool, &req, p.Channels, pinned, req.Code+p.IdemKey+strconv.FormatInt(time.Now().UnixNano(), 36))
	if err != nil {
		return matcher.Session{}, false, err
	}
	sess, replayed, err := s.store.Create(c.Request.Context(), req)
	if err != nil {
		return sess, false, s.storeErr("create", err)
	}
	if !replayed {
		s.metrics.created.WithLabelValues(p.API).Inc()
		// A session of one route is "created" on its number; each route of
		// a session of several is "offered" on its own: the user takes one,
		// so a number's created-but-never-verified stays a sign that it
		// stopped receiving (deploy/mogate-alerts.yml).
		routes, step := sess.RoutesOrSMS(), "created"
		if len(routes) > 1 {
			step = "offered"
		}
		for _, r := range routes {
			s.metrics.funnel.WithLabelValues(r.To, entryOf(rt, r.To), step, r.Channel).Inc()
		}
		for _, n := range matcher.RouteNumbers(routes) {
			rt.pool.Created(n)
		}
		s.lifecycle("verification created", sess, n.Provider, "api", p.API, "capture", sess.Capture(), "expires_at", sess.ExpiresAt)
	}
	return sess, replayed, nil
}

// presentString is a string field that may be left out but not sent as
// null or "": "number": null or "" must not quietly ask for capture mode.
type presentString struct {
	Value string
	Sent  bool // present in the body, null included
	Null  bool
}

func (s *presentString) UnmarshalJSON(b []byte) error {
	s.Sent = true
	if string(b) == "null" {
		s.Null = true
		return nil
	}
	return json.Unmarshal(b, &s.Value)
}

// createBody is the body of POST /v1/verifications. JSON null for a field
// other than number means the field was left out.
type createBody struct {
	Number      presentString   `json:"number"`
	Code        string          `json:"code"`
	Factor      string          `json:"factor"`
	To          string          `json:"to"`
	Country     string          `json:"country"`
	Language    string          `json:"language"`
	TTLSeconds  *int            `json:"ttl_seconds"`
	CallbackURL string          `json:"callback_url"`
	SuccessURL  string          `json:"success_url"`
	RedirectURL string          `json:"redirect_url"`
	Metadata    json.RawMessage `json:"metadata"`
	// Channels: null or left out is the default, one SMS route.
	Channels      []string `json:"channels"`
	ClientCountry string   `json:"client_country"`
}

func (s *Server) postVerification(c *gin.Context) {
	var b createBody
	raw, err := decodeJSON(c, &b)
	if err != nil {
		fail(c, err)
		return
	}
	if b.Number.Sent && strings.TrimSpace(b.Number.Value) == "" {
		fail(c, withMessage(pool.ErrBadNumber, "number must be an E.164 phone number; leave it out (not null or empty) for capture mode"))
		return
	}
	if b.Code != "" && b.Factor != "" && b.Code != b.Factor {
		fail(c, errorf(http.StatusUnprocessableEntity, "invalid_code", "code and factor differ; send one"))
		return
	}
	sess, replayed, err := s.create(c, createParams{
		API: "v1", Number: b.Number.Value, Code: first(b.Code, b.Factor), To: b.To, Country: b.Country,
		Language: b.Language, TTLSeconds: b.TTLSeconds, Callback: first(b.CallbackURL, b.SuccessURL), Redirect: b.RedirectURL,
		Metadata: b.Metadata, IdemKey: c.GetHeader("Idempotency-Key"), RawBody: raw,
		Channels: b.Channels, ClientCountry: b.ClientCountry,
	})
	if err != nil {
		fail(c, err)
		return
	}
	if replayed {
		c.Header("Idempotent-Replayed", "true")
	}
	c.Header("Location", "/v1/verifications/"+sess.ID)
	c.JSON(http.StatusCreated, s.view(sess))
}

// ownSession returns the caller's session id or a 404: another key's
// session is indistinguishable from a missing one.
func (s *Server) ownSession(c *gin.Context, id string) (matcher.Session, error) {
	sess, err := s.store.Get(c.Request.Context(), id)
	if err != nil || sess.Key != apiKey(c).Name {
		return matcher.Session{}, s.lookupErr("get", err, "no verification %q", id)
	}
	return sess, nil
}

func (s *Server) getVerification(c *gin.Context) {
	sess, err := s.ownSession(c, c.Param("id"))
	if err != nil {
		fail(c, err)
		return
	}
	var wait time.Duration
	if w := c.Query("wait"); w != "" {
		// Checked whatever the status: a bad wait is refused even when
		// there is nothing to wait for.
		if wait, err = parseWait(w); err != nil {
			fail(c, err)
			return
		}
	}
	if wait > 0 && sess.Status == matcher.Pending {
		release, err := s.holdKeyStream(c.Request.Context(), sess.Key)
		if err != nil {
			fail(c, err)
			return
		}
		defer release()
		ctx, cancel := context.WithTimeout(c.Request.Context(), wait)
		stop := context.AfterFunc(s.stopping, cancel)
		sess, err = s.store.Wait(ctx, sess.ID)
		stop()
		cancel()
		if err != nil {
			fail(c, s.lookupErr("wait", err, "no verification %q", c.Param("id")))
			return
		}
	}
	c.JSON(http.StatusOK, s.detail(sess))
}

// listPending answers GET /v1/verifications?number=N: the caller's pending
// verifications that expect a message from N, on every pool number, oldest
// first per number. Only pending ones are listed (status=pending is the
// one accepted filter), so no answer reveals another key's sessions.
func (s *Server) listPending(c *gin.Context) {
	if st := c.Query("status"); st != "" && st != "pending" {
		fail(c, errorf(http.StatusBadRequest, "invalid_status", "only status=pending can be listed"))
		return
	}
	sender, err := pool.Normalize(c.Query("number"))
	if err != nil {
		fail(c, withMessage(pool.ErrBadNumber, "number must be given, in E.164 (the sender the verifications expect)"))
		return
	}
	var tos []string
	for _, n := range s.live().pool.Numbers() {
		tos = append(tos, n.Number)
	}
	found, err := s.store.PendingFor(c.Request.Context(), sender, tos)
	if err != nil {
		fail(c, s.storeErr("list", err))
		return
	}
	out := []detailView{}
	for _, v := range found {
		if v.Key == apiKey(c).Name {
			out = append(out, s.detail(v))
		}
	}
	c.JSON(http.StatusOK, gin.H{"object": "list", "data": out})
}

func parseWait(w string) (time.Duration, error) {
	d, err := time.ParseDuration(w)
	if err != nil {
		n, err2 := strconv.Atoi(w)
		if err2 != nil {
			return 0, errorf(http.StatusBadRequest, "invalid_wait", "wait must be a duration such as 30s")
		}
		d = time.Duration(n) * time.Second
	}
	if d < 0 || d > maxWait {
		return 0, errorf(http.StatusBadRequest, "invalid_wait", "wait must be between 0s and %s", maxWait)
	}
	return d, nil
}

func (s *Server) cancelVerification(c *gin.Context) {
	sess, err := s.ownSession(c, c.Param("id"))
	if err != nil {
		fail(c, err)
		return
	}
	sess, err = s.store.Cancel(c.Request.Context(), sess.ID)
	if errors.Is(err, matcher.ErrNotPending) {
		err = withMessage(err, "the verification is already %s", sess.Status)
	}
	if err != nil {
		fail(c, s.storeErr("cancel", err))
		return
	}
	c.JSON(http.StatusOK, s.detail(sess))
}

type numberView struct {
	Number    string   `json:"number"`
	Human     string   `json:"human"`
	Provider  string   `json:"provider"`
	Country   string   `json:"country"`
	Countries []string `json:"countries"`
	Channels  []string `json:"channels"`
	Weight    float64  `json:"weight"`
	Health    string   `json:"health"`
	Pending   int      `json:"pending"`
	// Last24h counts the number's sessions created, verified and expired
	// in the last 24 hours.
	Last24h pool.Activity `json:"last_24h"`
}

func (s *Server) getNumbers(c *gin.Context) {
	pending, err := s.store.PendingByNumber(c.Request.Context())
	if err != nil {
		fail(c, s.storeErr("numbers", err))
		return
	}
	out := []numberView{}
	for _, n := range s.live().pool.Numbers() {
		countries := append([]string{}, n.Countries...)
		if n.Any {
			countries = append(countries, "*")
		}
		out = append(out, numberView{
			Number: n.Number, Human: humanNumber(n.Number), Provider: n.Provider, Country: n.Region,
			Countries: countries, Channels: n.Channels, Weight: n.Weight, Health: n.Health(), Pending: pending[n.Number], Last24h: n.Last24h(),
		})
	}
	c.JSON(http.StatusOK, gin.H{"object": "list", "data": out})
}

func first(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
