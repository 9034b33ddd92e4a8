package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/mogate/mogate/gateway/signals"
	"github.com/mogate/mogate/matcher"
	"rsc.io/qr"
)

// heartbeat is how often an idle event stream sends a comment line.
var heartbeat = 15 * time.Second

// stream writes the session's status as Server-Sent Events: the current one
// at once, then every change — woken by the match itself — with heartbeats
// in between, and ends after a final status.
func (s *Server) stream(c *gin.Context, sess matcher.Session, data func(matcher.Session) any) {
	w := c.Writer
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	// A stream lives as long as the verification, past the server's write timeout.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
	w.WriteHeader(http.StatusOK)
	n := 0
	send := func(v matcher.Session) {
		b, _ := json.Marshal(data(v))
		n++
		fmt.Fprintf(w, "id: %d\nevent: status\ndata: %s\n\n", n, b)
		w.Flush()
	}
	send(sess)
	for !sess.Status.Final() {
		ctx, cancel := context.WithTimeout(c.Request.Context(), heartbeat)
		stop := context.AfterFunc(s.stopping, cancel)
		next, err := s.store.Wait(ctx, sess.ID)
		stop()
		cancel()
		if err != nil || c.Request.Context().Err() != nil || s.stopping.Err() != nil {
			return
		}
		if next.Status != sess.Status {
			send(next)
		} else {
			fmt.Fprint(w, ": heartbeat\n\n")
			w.Flush()
		}
		sess = next
	}
}

// statusView is what the API's event stream sends.
func statusView(v matcher.Session) any {
	out := map[string]any{"id": v.ID, "status": v.Status.String(), "attempts": v.Attempts}
	if v.Status == matcher.Verified {
		out["verified_number"], out["verified_at"] = v.VerifiedNumber, v.FinishedAt
	}
	if r := matcher.Reason(v.Status, v.Reason); r != "" {
		out["reason"] = r
	}
	if via, ok := signals.Via(v); ok {
		out["channel"], out["route_to"], out["signals"] = via.Channel, via.To, signals.Of(v)
	}
	return out
}

func (s *Server) getEvents(c *gin.Context) {
	sess, err := s.ownSession(c, c.Param("id"))
	if err != nil {
		fail(c, err)
		return
	}
	release, err := s.holdKeyStream(c.Request.Context(), sess.Key)
	if err != nil {
		fail(c, err)
		return
	}
	defer release()
	s.stream(c, sess, statusView)
}

// qrPNG answers the QR code of uri: the session's sms: URI for the API,
// the page's QR link (pageQRURI) for the hosted page.
func qrPNG(c *gin.Context, uri string) {
	code, err := qr.Encode(uri, qr.M)
	if err != nil {
		fail(c, err)
		return
	}
	code.Scale = 8
	c.Header("Cache-Control", "private, max-age=600")
	c.Data(http.StatusOK, "image/png", code.PNG())
}

// getQR serves /v1/verifications/{id}/qr.png to the owner's API key: the
// QR holds the code, and ids appear in logs. Another key's id is the 404 of
// ownSession.
func (s *Server) getQR(c *gin.Context) {
	sess, err := s.ownSession(c, c.Param("id"))
	if err != nil {
		fail(c, err)
		return
	}
	qrPNG(c, s.pageQRURI(sess))
}
