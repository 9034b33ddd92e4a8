package outbox

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mogate/mogate/gateway/signals"
	"github.com/mogate/mogate/matcher"
)

// The bytes of an event: its body, id and signatures (Standard Webhooks, or
// Contiguity's for sessions created through its API).

var errNoEvent = errors.New("gateway: nothing to deliver")

// ContiguityAPIVersion is the api_version Contiguity's envelope carries.
const ContiguityAPIVersion = "v2025.12.10"

func (o *Outbox) request(ctx context.Context, d *delivery, dest string) (*http.Request, error) {
	var s matcher.Session
	if d.ev.Session != nil {
		s = *d.ev.Session
	}
	keyName := d.apiKey()
	k := o.Key(keyName)
	if k == nil {
		return nil, errUnknownKey
	}
	if !k.WebhookSecret.IsSet() {
		o.log.Warn("no webhook_secret for the API key: event not sent", "event", d.key(), "key", keyName)
		return nil, errNoEvent
	}
	now := o.now()
	id := matcher.EventID(s.ID, s.Status)
	var body []byte
	var err error
	h := http.Header{"Content-Type": {"application/json"}, "User-Agent": {"mogate"}}
	switch {
	case d.ev.Unmatched != nil:
		u := d.ev.Unmatched
		id = u.ID
		body, err = json.Marshal(map[string]any{
			"type": "message.unmatched", "timestamp": now.UTC().Format(time.RFC3339),
			"data": map[string]any{"provider": u.Message.Provider, "message_id": u.Message.MessageID, "from": u.Message.From,
				"to": u.Message.To, "text": u.Message.Text, "received_at": u.At},
		})
	case s.API == "contiguity":
		if s.Status != matcher.Verified {
			return nil, errNoEvent // Contiguity has only the success event
		}
		data := map[string]any{"otp_id": s.ID, "number": s.Number, "status": "verified"}
		if via, ok := signals.Via(s); ok {
			// mogate's additions to Contiguity's event (docs/api.md).
			data["channel"], data["route_to"], data["signals"] = via.Channel, via.To, signals.Of(s)
		}
		body, err = json.Marshal(map[string]any{
			"id": id, "type": "otp.reverse.verified", "timestamp": now.Unix(), "api_version": ContiguityAPIVersion,
			"data": data,
		})
		h.Set("Contiguity-Signature", ContiguitySignature(k.WebhookSecret.Reveal(), now, body))
	default:
		body, err = json.Marshal(map[string]any{
			"type": "verification." + s.Status.String(), "timestamp": now.UTC().Format(time.RFC3339), "data": o.base(s),
		})
	}
	if h.Get("Contiguity-Signature") == "" {
		ts := strconv.FormatInt(now.Unix(), 10)
		sig, serr := StandardSignature(k.WebhookSecret.Reveal(), id, ts, body)
		if serr != nil {
			o.log.Error("webhook_secret is not whsec_<base64>: event not sent", "key", keyName)
			return nil, errNoEvent
		}
		h.Set("webhook-id", id)
		h.Set("webhook-timestamp", ts)
		h.Set("webhook-signature", "v1,"+sig)
	}
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, dest, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errRefusedDestination, err)
	}
	req.Header = h
	return req, nil
}

// logNoDestination writes the line of an event that has nowhere to go, as
// it would have been sent: its type, id and webhook-id, never its body
// (which holds the full sender number).
func (o *Outbox) logNoDestination(ctx context.Context, d *delivery) {
	req, err := o.request(ctx, d, "")
	if err != nil {
		return
	}
	var ev struct {
		Type string `json:"type"`
	}
	b, err := io.ReadAll(req.Body)
	if err == nil {
		err = json.Unmarshal(b, &ev)
	}
	if err != nil {
		o.log.Warn("event body unreadable", "event", d.key(), "err", err)
	}
	o.log.Info("event not sent: no callback_url or webhook_url", "type", ev.Type, "event", d.key(), "key", d.apiKey(),
		"webhook_id", req.Header.Get("webhook-id"))
}

// StandardSignature is the Standard Webhooks v1 signature: Base64
// HMAC-SHA256, keyed with the Base64-decoded part of a whsec_ secret, of
// id + "." + timestamp + "." + body.
func StandardSignature(secret, id, timestamp string, body []byte) (string, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return "", err
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id + "." + timestamp + "."))
	m.Write(body)
	return base64.StdEncoding.EncodeToString(m.Sum(nil)), nil
}

// ContiguitySignature is Contiguity's header value: t=<unix>,v1=<hex
// HMAC-SHA256 of "t.body">, keyed with the whsec_ secret as given.
func ContiguitySignature(secret string, now time.Time, body []byte) string {
	t := strconv.FormatInt(now.Unix(), 10)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(t + "."))
	m.Write(body)
	return "t=" + t + ",v1=" + hex.EncodeToString(m.Sum(nil))
}
