package config

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"unicode"

	"gopkg.in/yaml.v3"
)

// Provider is one entry of `providers:`. Which keys are allowed depends on
// Type: adapters/registry holds the one table of provider types (keys,
// which are required and secret, adapter, REST client) and checks entries
// against it with CheckProviders.
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
	AppSecret       Secret   `yaml:"app_secret"`       // whatsapp
	VerifyToken     Secret   `yaml:"verify_token"`     // whatsapp
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

// Key describes one key of a provider type's entries.
type Key struct {
	Name     string
	Required bool // the entry is refused without it
	Secret   bool // a credential: redacted everywhere, never in output
	REST     bool // used only by the provider's REST API (mogate numbers), not to check webhooks
}

// Schema is what the configuration knows of a provider type: its keys, and
// the checks of their values. adapters/registry's table supplies one per type.
type Schema struct {
	Type string
	Keys []Key
	// OneNumber: the type's payloads lack the receiving number, so an entry
	// must have exactly one number (the gateway fills it in from there).
	OneNumber bool
	// Channels are the channels the type's numbers can receive on, and
	// DefaultChannels those a number serves when its entry lists none
	// (docs/configuration.md); empty: sms.
	Channels, DefaultChannels []string
	// NumberID: the type's payloads name the receiving number by an id
	// (Meta's phone_number_id), so each of its numbers must have one.
	NumberID bool
	// Check, when set, checks (and may default) values; it returns the
	// offending key and the problem, or "" when all is well.
	Check func(p *Provider) (key, problem string)
}

// KeyNames returns the names of the schema's keys.
func (s Schema) KeyNames() []string {
	out := make([]string, len(s.Keys))
	for i, k := range s.Keys {
		out[i] = k.Name
	}
	return out
}

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

// Get returns the value of key as written in the file (a list joined with
// ","); "" when unset or unknown. Secrets are revealed: callers keep them out
// of output.
func (p *Provider) Get(key string) string {
	f, ok := p.field(key)
	if !ok {
		return ""
	}
	if f.Kind() == reflect.Slice {
		return strings.Join(f.Interface().([]string), ",")
	}
	return f.String()
}

// Set sets key to value (a list key gets the one value), as if the file
// said so. It is for code that builds entries from key names: the
// conformance suite from fixtures.
func (p *Provider) Set(key, value string) error {
	f, ok := p.field(key)
	if !ok {
		return fmt.Errorf("config: provider entries have no key %q", key)
	}
	if f.Kind() == reflect.Slice {
		f.Set(reflect.ValueOf([]string{value}))
	} else {
		f.SetString(value)
	}
	if !slices.Contains(p.keys, key) {
		p.keys = append(p.keys, key)
	}
	return nil
}

func (p *Provider) field(key string) (reflect.Value, bool) {
	v := reflect.ValueOf(p).Elem()
	t := v.Type()
	for i := range t.NumField() {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); name == key && key != "-" {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}

// CheckSchema checks the entry against its type's schema: only the type's
// keys, the required ones present, no blank secret, s.Check. at is the
// entry's path ("providers[2]") for the messages.
func (p *Provider) CheckSchema(at string, s Schema) []error {
	var errs []error
	add := func(k, format string, args ...any) {
		errs = append(errs, errAt(p.line, k, format, args...))
	}
	allowed := s.KeyNames()
	for _, k := range p.keys {
		if k != "name" && k != "type" && !slices.Contains(allowed, k) {
			add(at+"."+k, "not a key of type %s (allowed: %s)", p.Type, strings.Join(allowed, ", "))
		}
	}
	for _, k := range s.Keys {
		// Entries built in code (dev mode) list no keys.
		if k.Required && p.keys != nil && !slices.Contains(p.keys, k.Name) {
			add(at+"."+k.Name, "required for type %s", p.Type)
		}
		if f, ok := p.field(k.Name); ok && k.Secret && f.Kind() == reflect.String && f.Len() > 0 {
			if strings.TrimSpace(f.String()) == "" {
				add(at+"."+k.Name, "a secret is blank")
			} else if strings.ContainsFunc(f.String(), unicode.IsControl) {
				add(at+"."+k.Name, "the secret contains a control character (a newline from a file or ${VAR}?)")
			}
		}
	}
	if s.Check != nil {
		if k, problem := s.Check(p); problem != "" {
			add(at+"."+k, "%s", problem)
		}
	}
	return errs
}

// CheckProviders checks every provider entry against the schema of its type
// and the numbers each entry must have; an unknown type is an error listing
// the known ones. It may set defaults (vonage's signature_method).
func (c *Config) CheckProviders(schemas []Schema) error {
	var errs []error
	perProvider := map[string]int{}
	for _, n := range c.Numbers {
		perProvider[n.Provider]++
	}
	known := make([]string, 0, len(schemas))
	for _, s := range schemas {
		known = append(known, s.Type)
	}
	for i := range c.Providers {
		p := &c.Providers[i]
		at := fmt.Sprintf("providers[%d]", i)
		j := slices.IndexFunc(schemas, func(s Schema) bool { return s.Type == p.Type })
		if j < 0 {
			errs = append(errs, errAt(p.line, at+".type", "unknown provider type %q (known: %s)", p.Type, strings.Join(known, ", ")))
			continue
		}
		errs = append(errs, p.CheckSchema(at, schemas[j])...)
		if n := perProvider[p.Name]; schemas[j].OneNumber && n != 1 {
			errs = append(errs, errAt(p.line, at, "%s payloads lack the receiving number, so entry %q must have exactly one number in numbers:, has %d", p.Type, p.Name, n))
		}
	}
	errs = append(errs, c.checkNumbers(schemas)...)
	return errors.Join(errs...)
}
