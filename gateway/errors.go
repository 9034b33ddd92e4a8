package gateway

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"
)

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

// renderErrors is the one place errors become responses: an *apiError as
// itself, anything else as a 500 whose detail goes only to the log.
func (s *Server) renderErrors(c *gin.Context) {
	c.Next()
	if len(c.Errors) == 0 || c.Writer.Written() {
		return
	}
	err := c.Errors.Last().Err
	var ae *apiError
	if !errors.As(err, &ae) {
		s.log.Error("request failed", "route", c.FullPath(), "err", err)
		ae = errorf(http.StatusInternalServerError, "internal", "internal error")
	}
	if ae.RetryAfter > 0 {
		c.Header("Retry-After", strconv.Itoa(ae.RetryAfter))
	}
	if c.GetBool(envelopeKey) {
		c.JSON(ae.Status, contiguityEnvelope("err_", "error", gin.H{"error": ae.Message, "status": ae.Status}))
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
