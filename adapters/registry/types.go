package registry

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"unicode"

	"github.com/mogate/mogate/adapters"
	"github.com/mogate/mogate/adapters/bandwidth"
	"github.com/mogate/mogate/adapters/bird"
	"github.com/mogate/mogate/adapters/infobip"
	"github.com/mogate/mogate/adapters/plivo"
	"github.com/mogate/mogate/adapters/provision"
	"github.com/mogate/mogate/adapters/sinch"
	"github.com/mogate/mogate/adapters/smsgate"
	"github.com/mogate/mogate/adapters/sns"
	"github.com/mogate/mogate/adapters/telnyx"
	"github.com/mogate/mogate/adapters/twilio"
	"github.com/mogate/mogate/adapters/vonage"
	"github.com/mogate/mogate/adapters/vonagemessages"
	"github.com/mogate/mogate/adapters/whatsapp"
	"github.com/mogate/mogate/config"
)

// Key flags, for short rows.
const (
	req = 1 << iota // required
	sec             // secret
	rst             // REST API only
)

func keys(spec ...any) []config.Key {
	var out []config.Key
	for i := 0; i < len(spec); i += 2 {
		f := spec[i+1].(int)
		out = append(out, config.Key{Name: spec[i].(string), Required: f&req != 0, Secret: f&sec != 0, REST: f&rst != 0})
	}
	return out
}

// checkToken refuses an auth_token no provider issues (Twilio's and Plivo's
// are ASCII letters and digits): with whitespace, a quote, a control or a
// non-ASCII character it is a bad ${VAR} or a copy with its quotes, and
// would only come back as the provider's 401, or fail every webhook's
// signature.
func checkToken(p *config.Provider) (string, string) {
	tok := p.AuthToken.Reveal()
	switch {
	case strings.ContainsFunc(tok, unicode.IsControl):
		return "", "" // CheckSchema says so for every secret
	case strings.ContainsFunc(tok, unicode.IsSpace):
		return "auth_token", "contains whitespace: it is the token as the console shows it, letters and digits"
	case strings.ContainsAny(tok, "\"'`"):
		return "auth_token", "contains a quote (a quoted ${VAR}?): it is the token as the console shows it, letters and digits"
	case strings.ContainsFunc(tok, func(r rune) bool { return r > unicode.MaxASCII }):
		return "auth_token", "contains a character that is not ASCII (a typographic quote from a copy?): it is the token as the console shows it, letters and digits"
	}
	return "", ""
}

// VonageSignatureMethods are the accepted signature_method values: "md5hash"
// is MD5(params+secret); the others are HMACs.
var VonageSignatureMethods = []string{"md5hash", "md5", "sha1", "sha256", "sha512"}

// Channel lists of the rows: what a type's numbers can receive, and what
// they serve by default.
var (
	sms = []string{config.ChannelSMS}
	all = []string{config.ChannelSMS, config.ChannelWhatsApp, config.ChannelCall}
)

// types is the table of provider types (docs/providers.md).
var types = []Type{
	{
		Schema: config.Schema{Type: "twilio", Keys: keys("auth_token", req|sec, "account_sid", 0, "api_url", rst), Check: checkToken,
			Channels: all, DefaultChannels: sms},
		Adapter: func(p config.Provider, env Env) (adapters.Adapter, error) {
			return twilio.New(twilio.Config{Name: p.Name, AuthToken: p.AuthToken.Reveal(), AccountSID: p.AccountSID})
		},
		REST: func(p config.Provider, hc *http.Client) (provision.Client, error) {
			return provision.NewTwilio(p.AccountSID, p.AuthToken.Reveal(), p.APIURL, hc)
		},
	},
	{
		Schema: config.Schema{Type: "vonage", Keys: keys("signature_secret", req|sec, "signature_method", 0, "api_key", sec, "api_secret", sec|rst, "api_url", rst),
			Channels: sms, DefaultChannels: sms,
			Check: func(p *config.Provider) (string, string) {
				if p.SignatureMethod == "" {
					p.SignatureMethod = "md5hash"
				}
				if !slices.Contains(VonageSignatureMethods, p.SignatureMethod) {
					return "signature_method", fmt.Sprintf("must be one of %s, got %q", strings.Join(VonageSignatureMethods, ", "), p.SignatureMethod)
				}
				return "", ""
			}},
		Adapter: func(p config.Provider, env Env) (adapters.Adapter, error) {
			return vonage.New(vonage.Config{Name: p.Name, SignatureSecret: p.SignatureSecret.Reveal(), SignatureMethod: p.SignatureMethod, APIKey: p.APIKey.Reveal(), Now: env.Now})
		},
		REST: func(p config.Provider, hc *http.Client) (provision.Client, error) {
			return provision.NewVonage(p.APIKey.Reveal(), p.APISecret.Reveal(), p.APIURL, hc)
		},
	},
	{
		Schema: config.Schema{Type: "vonage-messages", Keys: keys("signature_secret", req|sec, "api_key", sec),
			Channels: []string{config.ChannelSMS, config.ChannelWhatsApp}, DefaultChannels: sms},
		Adapter: func(p config.Provider, env Env) (adapters.Adapter, error) {
			return vonagemessages.New(vonagemessages.Config{Name: p.Name, SignatureSecret: p.SignatureSecret.Reveal(), APIKey: p.APIKey.Reveal(), Now: env.Now})
		},
		Manual: "Vonage dashboard, Applications, your Messages application: Inbound URL = {url}, method POST; link the number to that application",
	},
	{
		Schema: config.Schema{Type: "plivo", Keys: keys("auth_id", 0, "auth_token", req|sec, "api_url", rst), Check: checkToken,
			Channels: sms, DefaultChannels: sms},
		Adapter: func(p config.Provider, env Env) (adapters.Adapter, error) {
			return plivo.New(plivo.Config{Name: p.Name, AuthID: p.AuthID, AuthToken: p.AuthToken.Reveal()})
		},
		REST: func(p config.Provider, hc *http.Client) (provision.Client, error) {
			return provision.NewPlivo(p.AuthID, p.AuthToken.Reveal(), p.APIURL, hc)
		},
	},
	{
		Schema: config.Schema{Type: "telnyx", Keys: keys("public_key", req, "api_key", sec|rst, "api_url", rst),
			Channels: []string{config.ChannelSMS, config.ChannelCall}, DefaultChannels: sms,
			Check: func(p *config.Provider) (string, string) {
				if b, err := base64.StdEncoding.DecodeString(p.PublicKey); err != nil || len(b) != 32 {
					return "public_key", "must be the base64 of a 32-byte Ed25519 public key"
				}
				return "", ""
			}},
		Adapter: func(p config.Provider, env Env) (adapters.Adapter, error) {
			return telnyx.New(telnyx.Config{Name: p.Name, PublicKey: p.PublicKey, PrivateKey: p.PrivateKey.Reveal(), Now: env.Now})
		},
		REST: func(p config.Provider, hc *http.Client) (provision.Client, error) {
			return provision.NewTelnyx(p.APIKey.Reveal(), p.APIURL, hc)
		},
	},
	{
		Schema: config.Schema{Type: "sinch", Keys: keys("webhook_secret", req|sec), Channels: sms, DefaultChannels: sms},
		Adapter: func(p config.Provider, env Env) (adapters.Adapter, error) {
			return sinch.New(sinch.Config{Name: p.Name, WebhookSecret: p.WebhookSecret.Reveal(), Now: env.Now})
		},
		Manual: "Sinch Customer Dashboard, SMS, APIs, your service plan: Callback URL = {url}",
	},
	{
		Schema: config.Schema{Type: "bird", Keys: keys("signing_key", req|sec), OneNumber: true, Channels: sms, DefaultChannels: sms},
		Adapter: func(p config.Provider, env Env) (adapters.Adapter, error) {
			return bird.New(bird.Config{Name: p.Name, SigningKey: p.SigningKey.Reveal(), Now: env.Now})
		},
		Manual: "Bird dashboard, Developer, Webhooks: subscribe sms.inbound of the number's channel to {url}",
	},
	{
		Schema: config.Schema{Type: "bandwidth", Keys: keys("username", req, "password", req|sec), Channels: sms, DefaultChannels: sms},
		Adapter: func(p config.Provider, env Env) (adapters.Adapter, error) {
			return bandwidth.New(bandwidth.Config{Name: p.Name, Username: p.Username, Password: p.Password.Reveal()})
		},
		Manual: "Bandwidth App, Applications, the number's messaging application: Inbound Callback URL = {url}, with the entry's username and password",
	},
	{
		Schema: config.Schema{Type: "infobip", Keys: keys("username", req, "password", req|sec), Channels: sms, DefaultChannels: sms},
		Adapter: func(p config.Provider, env Env) (adapters.Adapter, error) {
			return infobip.New(infobip.Config{Name: p.Name, Username: p.Username, Password: p.Password.Reveal()})
		},
		Manual: "Infobip portal, Numbers, the number's SMS keyword configuration: Forward to HTTP, URL = {url}, with the entry's username and password",
	},
	{
		Schema: config.Schema{Type: "sns", Keys: keys("topic_arns", req), Channels: sms, DefaultChannels: sms},
		Adapter: func(p config.Provider, env Env) (adapters.Adapter, error) {
			return sns.New(sns.Config{Name: p.Name, TopicARNs: p.TopicARNs, HTTP: env.HTTP, PrivateKey: p.PrivateKey.Reveal(), Now: env.Now})
		},
		Manual: "AWS End User Messaging SMS: two-way SMS of the number to the SNS topic; SNS: an HTTPS subscription of the topic to {url}",
	},
	{
		Schema: config.Schema{Type: "smsgate", Keys: keys("signing_key", req|sec), OneNumber: true, Channels: sms, DefaultChannels: sms},
		Adapter: func(p config.Provider, env Env) (adapters.Adapter, error) {
			return smsgate.New(smsgate.Config{Name: p.Name, SigningKey: p.SigningKey.Reveal(), Now: env.Now})
		},
		Manual: "SMS Gateway for Android app: add a webhook for sms:received to {url}, with the entry's signing key",
	},
	{
		Schema: config.Schema{Type: "whatsapp", Keys: keys("app_secret", req|sec, "verify_token", req|sec), NumberID: true,
			Channels: []string{config.ChannelWhatsApp}, DefaultChannels: []string{config.ChannelWhatsApp}},
		Adapter: func(p config.Provider, env Env) (adapters.Adapter, error) {
			return whatsapp.New(whatsapp.Config{Name: p.Name, AppSecret: p.AppSecret.Reveal(), VerifyToken: p.VerifyToken.Reveal(), Now: env.Now})
		},
		Manual: "Meta App Dashboard, WhatsApp, Configuration: Callback URL = {url}, Verify token = the entry's verify_token; subscribe the messages field",
	},
}
