package provision

import (
	"context"
	"errors"
	"net/http"

	twclient "github.com/twilio/twilio-go/client"
	api "github.com/twilio/twilio-go/rest/api/v2010"
)

// Twilio sets IncomingPhoneNumbers' SmsUrl and SmsMethod (and, for numbers
// that take calls, VoiceUrl and VoiceMethod) through twilio-go's
// rest/api/v2010 (HTTP Basic with the account SID and auth token).
type Twilio struct {
	api *api.ApiService
	t   *transport
}

var _ VoiceClient = (*Twilio)(nil)

// NewTwilio returns the client of an account; apiURL "" is Twilio's public
// API (https://api.twilio.com), hc supplies the timeout and transport.
func NewTwilio(accountSID, authToken, apiURL string, hc *http.Client) (*Twilio, error) {
	if accountSID == "" || authToken == "" {
		return nil, errors.New("account_sid and auth_token are needed for Twilio's REST API")
	}
	t, err := newTransport(apiURL, next(hc), "api.twilio.com")
	if err != nil {
		return nil, err
	}
	t.code, t.hint = twilioCode, "account_sid and auth_token"
	c := &twclient.Client{Credentials: twclient.NewCredentials(accountSID, authToken), HTTPClient: client(hc, t)}
	c.SetAccountSid(accountSID)
	rh := twclient.NewRequestHandler(c)
	rh.Edge, rh.Region = "", "" // TWILIO_EDGE/REGION would change the host api_url stands for
	return &Twilio{api: api.NewApiService(rh), t: t}, nil
}

// List follows next_page_uri through every page of IncomingPhoneNumbers.
func (c *Twilio) List(ctx context.Context) ([]Number, error) {
	size := 1000
	var recs []api.ApiV2010IncomingPhoneNumber
	if err := c.t.call(func() (err error) {
		recs, err = c.api.ListIncomingPhoneNumber(&api.ListIncomingPhoneNumberParams{PageSize: &size})
		return err
	}); err != nil {
		return nil, err
	}
	out := make([]Number, 0, len(recs))
	for _, r := range recs {
		n := Number{Number: str(r.PhoneNumber), ID: str(r.Sid), URL: str(r.SmsUrl), Method: str(r.SmsMethod)}
		if app := str(r.SmsApplicationSid); app != "" {
			// Twilio ignores sms_url while an SMS application is set.
			n.Missing, n.extra = "SMS application "+app, app
		}
		n.VoiceURL, n.VoiceMethod = str(r.VoiceUrl), str(r.VoiceMethod)
		if app := str(r.VoiceApplicationSid); app != "" {
			// Likewise voice_url while a voice application is set.
			n.VoiceMissing, n.voiceExtra = "voice application "+app, app
		}
		if trunk := str(r.TrunkSid); trunk != "" {
			// A number on an Elastic SIP trunk sends its calls to the trunk.
			n.VoiceMissing = "SIP trunk " + trunk
			n.VoiceBlocked = "its calls go to SIP trunk " + trunk + ": remove the number from the trunk in Twilio's console"
		}
		out = append(out, n)
	}
	return out, nil
}

// Point sets SmsUrl and SmsMethod POST, and detaches an SMS application,
// which would otherwise take precedence.
func (c *Twilio) Point(ctx context.Context, n Number, url string) (Action, string, error) {
	post := http.MethodPost
	p := &api.UpdateIncomingPhoneNumberParams{SmsUrl: &url, SmsMethod: &post}
	note := ""
	if n.extra != "" {
		empty := ""
		p.SmsApplicationSid = &empty
		note = "detached from SMS application " + n.extra
	}
	return c.update(n, p, note)
}

// PointVoice sets VoiceUrl and VoiceMethod POST, and detaches a voice
// application, which would otherwise take precedence.
func (c *Twilio) PointVoice(ctx context.Context, n Number, url string) (Action, string, error) {
	post := http.MethodPost
	p := &api.UpdateIncomingPhoneNumberParams{VoiceUrl: &url, VoiceMethod: &post}
	note := ""
	if n.voiceExtra != "" {
		empty := ""
		p.VoiceApplicationSid = &empty
		note = "detached from voice application " + n.voiceExtra
	}
	return c.update(n, p, note)
}

// update applies p to the number n; note says what else it changed.
func (c *Twilio) update(n Number, p *api.UpdateIncomingPhoneNumberParams, note string) (Action, string, error) {
	if err := c.t.call(func() error { _, err := c.api.UpdateIncomingPhoneNumber(n.ID, p); return err }); err != nil {
		return "", "", err
	}
	return Updated, note, nil
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
