package gateway

import (
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/mogate/mogate/adapters"
	"github.com/mogate/mogate/gateway/outbox"
	"github.com/mogate/mogate/gateway/signals"
	"github.com/mogate/mogate/matcher"
)

// contiguityAPIVersion is the api_version Contiguity's envelope carries.
const contiguityAPIVersion = outbox.ContiguityAPIVersion

// contiguityEnvelope wraps data as Contiguity's API does (docs/api.md, "Contiguity-compatible").
func contiguityEnvelope(idPrefix, object string, data any) gin.H {
	return gin.H{
		"id": idPrefix + adapters.RandomHex(12), "timestamp": time.Now().UnixMilli(),
		"api_version": contiguityAPIVersion, "object": object, "data": data,
	}
}

// contiguityRoutes makes errors of the group use Contiguity's envelope.
func contiguityRoutes(c *gin.Context) {
	c.Set(envelopeKey, true)
	c.Next()
}

type initiateBody struct {
	Number     string `json:"number"`
	Factor     string `json:"factor"`
	To         string `json:"to"`
	Service    string `json:"service"`
	Language   string `json:"language"`
	SuccessURL string `json:"success_url"`
}

func (s *Server) contiguityInitiate(c *gin.Context) {
	var b initiateBody
	raw, err := decodeJSON(c, &b)
	if err != nil {
		fail(c, err)
		return
	}
	if b.Number == "" {
		fail(c, errorf(http.StatusBadRequest, "invalid_number", "number is required"))
		return
	}
	channels, err := channelsOfService(b.Service)
	if err != nil {
		fail(c, err)
		return
	}
	sess, _, err := s.create(c, createParams{
		API: "contiguity", IDPrefix: "r_otp_", Number: b.Number, Code: b.Factor, To: b.To, Language: b.Language,
		Callback: b.SuccessURL, IdemKey: c.GetHeader("Idempotency-Key"), RawBody: raw, Channels: channels,
	})
	if err != nil {
		fail(c, err) // rendered with Contiguity's statuses (renderErrors)
		return
	}
	// The service is the session's one route's channel (a pinned number
	// that takes no SMS gives a whatsapp route even without service), and
	// the QR and "tap to verify" open that route's link.
	service := sess.RoutesOrSMS()[0].Channel
	c.JSON(http.StatusOK, contiguityEnvelope("req_", "response", gin.H{
		"otp_id": sess.ID, "number": sess.Number, "factor": sess.Code, "to": sess.To, "service": service,
		"expires_at": sess.ExpiresAt.Format(time.RFC3339), "success_url": nullable(sess.Callback),
		"ui": gin.H{"text": s.instruction(sess), "qr_code": s.pageQRURI(sess)},
	}))
}

func (s *Server) contiguityVerify(c *gin.Context) {
	sess, err := s.ownSession(c, c.Param("otp_id"))
	if err != nil {
		fail(c, err)
		return
	}
	data := gin.H{
		"otp_id": sess.ID, "status": sess.Status.String(), "expires_at": sess.ExpiresAt.Format(time.RFC3339),
		"verified_number": nullable(sess.VerifiedNumber),
	}
	if via, ok := signals.Via(sess); ok {
		data["channel"], data["route_to"], data["signals"] = via.Channel, via.To, signals.Of(sess)
	}
	c.JSON(http.StatusOK, contiguityEnvelope("req_", "response", data))
}

func (s *Server) contiguityCancel(c *gin.Context) {
	sess, err := s.ownSession(c, c.Param("otp_id"))
	if err != nil {
		fail(c, err)
		return
	}
	sess, err = s.store.Cancel(c.Request.Context(), sess.ID)
	if errors.Is(err, matcher.ErrNotPending) {
		err = withMessage(err, "the OTP is already %s", sess.Status)
	}
	if err != nil {
		fail(c, s.storeErr("cancel", err))
		return
	}
	c.JSON(http.StatusOK, contiguityEnvelope("req_", "response", gin.H{"otp_id": sess.ID, "status": "cancelled"}))
}
