package config

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Provider is one entry of `providers:`. Which keys are allowed depends on
// Type (DESIGN.md §3); a key of another type is an error naming its line.
type Provider struct {
	Name string `yaml:"name"`
	Type string `yaml:"type"`

	AuthToken       Secret   `yaml:"auth_token"`       // twilio, plivo
	AccountSID      string   `yaml:"account_sid"`      // twilio
	SignatureSecret Secret   `yaml:"signature_secret"` // vonage, vonage-messages
	SignatureMethod string   `yaml:"signature_method"` // vonage
	APIKey          Secret   `yaml:"api_key"`          // vonage, vonage-messages; telnyx (REST Bearer)
	APISecret       Secret   `yaml:"api_secret"`       // vonage
	AuthID          string   `yaml:"auth_id"`          // plivo
	PublicKey       string   `yaml:"public_key"`       // telnyx
	WebhookSecret   Secret   `yaml:"webhook_secret"`   // sinch
	SigningKey      Secret   `yaml:"signing_key"`      // bird, smsgate
	Username        string   `yaml:"username"`         // bandwidth, infobip
	Password        Secret   `yaml:"password"`         // bandwidth, infobip
	TopicARNs       []string `yaml:"topic_arns"`       // sns
	// APIURL is the provider's REST API base for `mogate numbers`
	// (twilio, vonage, plivo, telnyx); empty: the provider's public API.
	APIURL string `yaml:"api_url"`

	// PrivateKey signs requests for providers that sign with a key pair
	// (telnyx: base64 Ed25519 seed). Only code sets it — the conformance
	// suite and tests, which play the provider; mogate.yaml cannot.
	PrivateKey Secret `yaml:"-"`

	line int
	keys []string
}

// providerKeys lists, per type, the keys an entry may carry and which of them are required.
var providerKeys = map[string]struct{ allowed, required []string }{
	"twilio":          {[]string{"auth_token", "account_sid", "api_url"}, []string{"auth_token"}},
	"vonage":          {[]string{"signature_secret", "signature_method", "api_key", "api_secret", "api_url"}, []string{"signature_secret"}},
	"vonage-messages": {[]string{"signature_secret", "api_key"}, []string{"signature_secret"}},
	"plivo":           {[]string{"auth_id", "auth_token", "api_url"}, []string{"auth_token"}},
	"telnyx":          {[]string{"public_key", "api_key", "api_url"}, []string{"public_key"}},
	"sinch":           {[]string{"webhook_secret"}, []string{"webhook_secret"}},
	"bird":            {[]string{"signing_key"}, []string{"signing_key"}},
	"bandwidth":       {[]string{"username", "password"}, []string{"username", "password"}},
	"infobip":         {[]string{"username", "password"}, []string{"username", "password"}},
	"sns":             {[]string{"topic_arns"}, []string{"topic_arns"}},
	"smsgate":         {[]string{"signing_key"}, []string{"signing_key"}},
}

// noReceivingNumber lists the types whose inbound payload lacks the
// receiving number: the gateway fills it in from the entry's only pool
// number, so such an entry must have exactly one.
var noReceivingNumber = map[string]bool{"bird": true, "smsgate": true}

// VonageSignatureMethods are the accepted signature_method values: "md5hash"
// is MD5(params+secret); the others are HMACs.
var VonageSignatureMethods = []string{"md5hash", "md5", "sha1", "sha256", "sha512"}

// UnmarshalYAML records which keys the entry carries and on which line, then
// decodes it normally.
func (p *Provider) UnmarshalYAML(n *yaml.Node) error {
	type plain Provider
	if err := n.Decode((*plain)(p)); err != nil {
		return err
	}
	p.line = n.Line
	for i := 0; i+1 < len(n.Content); i += 2 {
		p.keys = append(p.keys, n.Content[i].Value)
	}
	return nil
}

// Line is the line of the entry in its file (0 when not from a file).
func (p *Provider) Line() int { return p.line }

func (p *Provider) validate(key string) []error {
	var errs []error
	add := func(k, format string, args ...any) {
		prefix := "config: "
		if p.line > 0 {
			prefix = fmt.Sprintf("config: line %d: ", p.line)
		}
		errs = append(errs, fmt.Errorf("%s%s: %s", prefix, k, fmt.Sprintf(format, args...)))
	}
	spec, ok := providerKeys[p.Type]
	if !ok {
		add(key+".type", "unknown provider type %q (known: %s)", p.Type, strings.Join(ProviderTypes(), ", "))
		return errs
	}
	for _, k := range p.keys {
		if k == "name" || k == "type" {
			continue
		}
		if !slices.Contains(spec.allowed, k) {
			add(key+"."+k, "not a key of type %s (allowed: %s)", p.Type, strings.Join(spec.allowed, ", "))
		}
	}
	if p.keys != nil { // entries built in code (dev mode) list no keys
		for _, k := range spec.required {
			if !slices.Contains(p.keys, k) {
				add(key+"."+k, "required for type %s", p.Type)
			}
		}
	}
	switch p.Type {
	case "vonage":
		if p.SignatureMethod == "" {
			p.SignatureMethod = "md5hash"
		}
		if !slices.Contains(VonageSignatureMethods, p.SignatureMethod) {
			add(key+".signature_method", "must be one of %s, got %q", strings.Join(VonageSignatureMethods, ", "), p.SignatureMethod)
		}
	case "telnyx":
		if b, err := base64.StdEncoding.DecodeString(p.PublicKey); err != nil || len(b) != 32 {
			add(key+".public_key", "must be the base64 of a 32-byte Ed25519 public key")
		}
	}
	for _, s := range []Secret{p.AuthToken, p.SignatureSecret, p.WebhookSecret, p.SigningKey, p.Password} {
		if s.IsSet() && strings.TrimSpace(s.Reveal()) == "" {
			add(key, "a secret is blank")
		}
	}
	return errs
}
