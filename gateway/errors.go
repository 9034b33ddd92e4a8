package gateway

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"
	"github.com/mogate/mogate/adapters"
	"github.com/mogate/mogate/matcher"
	"github.com/mogate/mogate/pool"
)

// Error kinds of the gateway itself.
var (
	// errMalformedMessage: a verified webhook carries a message without its
	// sender, its receiving number (which the entry cannot supply either)
	// or its id. The provider must not retry it.
	errMalformedMessage = errors.New("gateway: message without sender, receiving number or id")
	// errUnavailable: the store failed; nothing was acknowledged, retry.
	errUnavailable = errors.New("gateway: storage unavailable")
)

// errorKind is how the API answers one kind of error.
type errorKind struct {
	err        error
	status     int
	code       string
	message    string
	retryAfter int // seconds
}

// errorKinds is the one table from sentinel errors to answers; the first
// row whose error matches (errors.Is) wins. Anything else is a 500.
var errorKinds = []errorKind{
	{err: matcher.ErrNotFound, status: http.StatusNotFound, code: "not_found", message: "no such verification"},
	{err: matcher.ErrNotPending, status: http.StatusConflict, code: "not_pending", message: "the verification is no longer pending"},
	{err: matcher.ErrIdempotencyReused, status: http.StatusConflict, code: "idempotency_key_reused", message: "this Idempotency-Key was used with a different request"},
	{err: matcher.ErrInvalidCode, status: http.StatusUnprocessableEntity, code: "invalid_code", message: "code must be letters, digits and separators (space, - or .), at most 16 characters"},
	{err: matcher.ErrCodeNotAllowed, status: http.StatusUnprocessableEntity, code: "code_not_allowed", message: "without number (capture mode) mogate generates the code; omit code"},
	// Capture codes are generated: this is a number too busy to find a free one.
	{err: matcher.ErrCodeInUse, status: http.StatusServiceUnavailable, code: "no_free_code", message: "no free code on that number right now; retry", retryAfter: 1},
	{err: pool.ErrNotInPool, status: http.StatusUnprocessableEntity, code: "to_not_in_pool", message: "to is not one of this deployment's numbers (see GET /v1/numbers)"},
	// ErrNoChannel is an ErrNoNumber too: its row comes first.
	{err: pool.ErrNoChannel, status: http.StatusUnprocessableEntity, code: "channel_unavailable", message: "no pool number serves that channel for that sender"},
	{err: matcher.ErrInvalidRoutes, status: http.StatusUnprocessableEntity, code: "invalid_channels", message: "the channels asked for do not make a valid set of routes"},
	{err: pool.ErrDrained, status: http.StatusUnprocessableEntity, code: "no_number", message: "that number is drained (weight 0) and takes no new verifications"},
	{err: pool.ErrNoNumber, status: http.StatusUnprocessableEntity, code: "no_number", message: "no pool number serves that country"},
	{err: pool.ErrBadNumber, status: http.StatusUnprocessableEntity, code: "invalid_number", message: "number must be an E.164 phone number such as +14155550123"},
	// A missing signature is also unauthenticated: its row comes first.
	{err: adapters.ErrMissingSignature, status: http.StatusUnauthorized, code: "missing_signature", message: "the request is not signed"},
	{err: adapters.ErrUnauthenticated, status: http.StatusForbidden, code: "invalid_signature", message: "the signature does not verify"},
	{err: adapters.ErrMalformed, status: http.StatusBadRequest, code: "malformed_payload", message: "the payload is not a valid message of this provider"},
	{err: errMalformedMessage, status: http.StatusBadRequest, code: "malformed_payload", message: "the message lacks its sender, receiving number or id"},
	{err: matcher.ErrUnavailable, status: http.StatusServiceUnavailable, code: "unavailable", message: "could not store the change; retry", retryAfter: 5},
	{err: errUnavailable, status: http.StatusServiceUnavailable, code: "unavailable", message: "could not store the change; retry", retryAfter: 5},
}

// detailed keeps an error's kind (its row) with a message about this
// request. The message reaches the caller: it must not hold a secret.
type detailed struct {
	kind    error
	message string
}

func (d *detailed) Error() string { return d.kind.Error() + ": " + d.message }
func (d *detailed) Unwrap() error { return d.kind }

// withMessage answers err's kind with a message specific to the request.
func withMessage(kind error, format string, args ...any) error {
	return &detailed{kind: kind, message: fmt.Sprintf(format, args...)}
}

// toAPIError finds the answer for err: an *apiError as itself, else its
// row of errorKinds; nil when err is of no known kind.
func toAPIError(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	for _, k := range errorKinds {
		if errors.Is(err, k.err) {
			ae = &apiError{Status: k.status, Code: k.code, Message: k.message, RetryAfter: k.retryAfter}
			var d *detailed
			if errors.As(err, &d) {
				ae.Message = d.message
			}
			return ae
		}
	}
	return nil
}

// known reports whether err has a row of errorKinds or is an *apiError.
func known(err error) bool { return toAPIError(err) != nil }

// apiError is an error with an HTTP status and a stable code. Only its Code
// and Message reach the caller; neither may hold a secret.
type apiError struct {
	Status     int
	Code       string
	Message    string
	RetryAfter int // seconds; sets Retry-After when > 0
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

func errorf(status int, code, format string, args ...any) *apiError {
	return &apiError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// envelopeKey marks routes whose errors use Contiguity's envelope.
const envelopeKey = "mogate.envelope"

// fail records err for the error middleware and stops the chain.
func fail(c *gin.Context, err error) {
	_ = c.Error(err)
	c.Abort()
}

// storeErr passes on an error of a known kind and turns anything else the
// store returns into a logged storage failure (503).
func (s *Server) storeErr(op string, err error) error {
	if err == nil || known(err) && !errors.Is(err, matcher.ErrUnavailable) {
		return err
	}
	s.log.Error("storage failure", "op", op, "err", err)
	return fmt.Errorf("%w: %s", errUnavailable, op)
}

// lookupErr answers a failed lookup: 503 when the store could not be
// reached (never "not found" for a session that may well exist), else a
// 404 with msg.
func (s *Server) lookupErr(op string, err error, format string, args ...any) error {
	if errors.Is(err, matcher.ErrUnavailable) {
		return s.storeErr(op, err)
	}
	return withMessage(matcher.ErrNotFound, format, args...)
}

// renderErrors is the one place errors become responses: an *apiError as
// itself, a sentinel error as its row of errorKinds, anything else as a 500
// whose detail goes only to the log.
func (s *Server) renderErrors(c *gin.Context) {
	c.Next()
	if len(c.Errors) == 0 || c.Writer.Written() {
		return
	}
	err := c.Errors.Last().Err
	ae := toAPIError(err)
	if ae == nil {
		s.log.Error("request failed", "route", c.FullPath(), "err", err)
		ae = errorf(http.StatusInternalServerError, "internal", "internal error")
	}
	if ae.RetryAfter > 0 {
		c.Header("Retry-After", strconv.Itoa(ae.RetryAfter))
	}
	if c.GetBool(envelopeKey) {
		// Contiguity documents 400 for invalid input and for an OTP that
		// is no longer pending.
		status := ae.Status
		if status == http.StatusUnprocessableEntity || ae.Code == "not_pending" {
			status = http.StatusBadRequest
		}
		c.JSON(status, contiguityEnvelope("err_", "error", gin.H{"error": ae.Message, "status": status}))
		return
	}
	c.JSON(ae.Status, gin.H{"error": gin.H{"code": ae.Code, "message": ae.Message}})
}

// recoverJSON turns a panic into a 500 without a stack trace in the response.
func (s *Server) recoverJSON(c *gin.Context) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("panic", "route", c.FullPath(), "panic", fmt.Sprint(r))
			fail(c, errorf(http.StatusInternalServerError, "internal", "internal error"))
		}
	}()
	c.Next()
}
