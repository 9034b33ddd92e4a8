// Package config loads mogate's YAML configuration: strict keys (an unknown
// key is an error naming it and its line), ${ENV} expansion in values,
// defaults in code, and a redacting Secret type for every credential.
package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Config is the whole of mogate.yaml (docs/configuration.md).
type Config struct {
	Listen         string       `yaml:"listen"`
	PublicURL      string       `yaml:"public_url"`
	DataDir        string       `yaml:"data_dir"`
	Store          string       `yaml:"store"`
	RedisURL       Secret       `yaml:"redis_url"`
	TrustedProxies []string     `yaml:"trusted_proxies"`
	APIKeys        []APIKey     `yaml:"api_keys"`
	Providers      []Provider   `yaml:"providers"`
	Numbers        []Number     `yaml:"numbers"`
	Verification   Verification `yaml:"verification"`
	Channels       Channels     `yaml:"channels"`
	Limits         Limits       `yaml:"limits"`
	Retention      Duration     `yaml:"retention"`
	// RedisPrefix begins every Redis key and channel name of store: redis:
	// deployments sharing one Redis (prod and staging) need one each.
	RedisPrefix string `yaml:"redis_prefix"`
	// RedisUnsafe lets store: redis start on a server without AOF
	// appendfsync always and noeviction (tests and benchmarks only).
	RedisUnsafe bool `yaml:"redis_unsafe"`
	// RedisWaitReplicas is how many replicas must have each write before
	// its 2xx (WAIT); 0 trusts the primary alone.
	RedisWaitReplicas int      `yaml:"redis_wait_replicas"`
	RedisWaitTimeout  Duration `yaml:"redis_wait_timeout"` // bound of each WAIT
	// RedisWaitAOF waits for the write's fsync on the primary and
	// RedisWaitReplicas replicas (WAITAOF, Redis >= 7.2).
	RedisWaitAOF  bool     `yaml:"redis_wait_aof"`
	Events        Events   `yaml:"events"`
	LogLevel      string   `yaml:"log_level"`      // debug | info | warn | error
	AdminListen   string   `yaml:"admin_listen"`   // when set, /metrics is served only there
	ShutdownDelay Duration `yaml:"shutdown_delay"` // /readyz answers 503 this long before the listener closes

	// Dev is true when the configuration is the built-in dev mode one.
	Dev bool `yaml:"-"`

	lines map[string]int // line of each key in the file, by path ("numbers[0].weight")
}

// APIKey is one client of the HTTP API. Exactly one of Key and KeySHA256 is set.
type APIKey struct {
	Name          string `yaml:"name"`
	Key           Secret `yaml:"key"`
	KeySHA256     string `yaml:"key_sha256"`
	WebhookURL    string `yaml:"webhook_url"`
	WebhookSecret Secret `yaml:"webhook_secret"`
	// UnmatchedEvents opts the key in to message.unmatched events: messages
	// that match no verification belong to no key, so a deployment shared by
	// several apps must not send them to all.
	UnmatchedEvents bool `yaml:"unmatched_events"`
	// AppName names the app on the hosted page and in WhatsApp's prefilled
	// text; Validate sets it to Name when the file leaves it out.
	AppName string `yaml:"app_name"`
	line    int
}

// Number is one receiving number of the pool.
type Number struct {
	Number    string   `yaml:"number"`
	Provider  string   `yaml:"provider"`
	Countries []string `yaml:"countries"`
	// Weight is the number's share of new sessions. 0 drains it: no new
	// sessions, pending ones still verify. A file entry without weight gets
	// 1; code that builds a Number must set it.
	Weight float64 `yaml:"weight"`
	// Channels the number serves (sms, whatsapp, call). CheckProviders
	// sets the provider type's default when the file lists none, and
	// refuses a channel the type cannot receive.
	Channels []string `yaml:"channels"`
	// PhoneNumberID is the number's id at Meta (metadata.phone_number_id):
	// required for numbers of a whatsapp entry, refused on others, unique.
	PhoneNumberID string `yaml:"phone_number_id"`
	line          int
}

// Channel names (Number.Channels; docs/configuration.md).
const (
	ChannelSMS      = "sms"
	ChannelWhatsApp = "whatsapp"
	ChannelCall     = "call"
)

// KnownChannels lists every channel, in documentation order.
var KnownChannels = []string{ChannelSMS, ChannelWhatsApp, ChannelCall}

// LineTypes are the values verification.reject_line_types accepts.
var LineTypes = []string{"mobile", "landline", "voip", "toll_free", "other"}

// Verification holds the session defaults.
type Verification struct {
	TTL         Duration `yaml:"ttl"`
	CodeLength  int      `yaml:"code_length"`
	MaxAttempts int      `yaml:"max_attempts"`
	// WhatsAppText is the prefilled text of a WhatsApp route's link: {code}
	// (required) is the code, {app} the API key's app_name.
	WhatsAppText string `yaml:"whatsapp_text"`
	// RejectLineTypes: a sender whose line type a provider reported as one
	// of these never verifies (LineTypes lists the values).
	RejectLineTypes []string `yaml:"reject_line_types"`
}

// Channels configures channels beyond SMS.
type Channels struct {
	Call CallChannel `yaml:"call"`
}

// CallChannel configures inbound-call verification.
type CallChannel struct {
	// Countries are the ISO countries whose senders are offered a call
	// route (STIR/SHAKEN exists only in the US and Canada).
	Countries []string `yaml:"countries"`
	// MinAttestation is the STIR/SHAKEN level a call needs: only "A".
	MinAttestation string `yaml:"min_attestation"`
}

// Limits are rate limits; 0 means unlimited.
type Limits struct {
	CreatesPerKeyPerSecond    float64 `yaml:"creates_per_key_per_second"`
	CreatesPerNumberPerHour   int     `yaml:"creates_per_number_per_hour"`
	UnmatchedPerSenderPerHour int     `yaml:"unmatched_per_sender_per_hour"`
	// CaptureGuessesPerSenderPerHour bounds the SMS of one sender that
	// reach capture matching, matched or not (docs/matching.md).
	CaptureGuessesPerSenderPerHour int `yaml:"capture_guesses_per_sender_per_hour"`
	// StreamsPerKey bounds concurrent SSE streams and long-polls per API key.
	StreamsPerKey int `yaml:"streams_per_key"`
	// PageStreamsPerSession bounds the concurrent event streams of one
	// verification's hosted page (no API key); they never count against
	// StreamsPerKey.
	PageStreamsPerSession int `yaml:"page_streams_per_session"`
	// MaxConnections caps the public listener's open connections; at the
	// cap the oldest idle (or not yet fully sent) one is closed for a new
	// one.
	MaxConnections int `yaml:"max_connections"`
}

// Events configures outbound events to apps.
type Events struct {
	// AllowPrivateDestinations lets events go to http URLs and to loopback,
	// private and other non-public addresses: for local testing only (dev
	// mode sets it).
	AllowPrivateDestinations bool `yaml:"allow_private_destinations"`
}

// Duration is a time.Duration that reads "10m" style values.
type Duration = time.Duration

// Default returns the configuration every file starts from.
func Default() Config {
	return Config{
		Listen:  "127.0.0.1:8080",
		DataDir: "./mogate-data",
		Store:   "memory",
		Verification: Verification{
			TTL:          10 * time.Minute,
			CodeLength:   6,
			MaxAttempts:  3,
			WhatsAppText: "{app} code {code}",
		},
		Channels: Channels{Call: CallChannel{Countries: []string{"US", "CA"}, MinAttestation: "A"}},
		Limits: Limits{
			CreatesPerKeyPerSecond:         50,
			CreatesPerNumberPerHour:        10,
			UnmatchedPerSenderPerHour:      10,
			CaptureGuessesPerSenderPerHour: 10,
			StreamsPerKey:                  1000,
			PageStreamsPerSession:          4,
			MaxConnections:                 10000,
		},
		Retention:        24 * time.Hour,
		RedisWaitTimeout: 200 * time.Millisecond,
		LogLevel:         "info",
		RedisPrefix:      "mogate",
		ShutdownDelay:    5 * time.Second,
	}
}

// Load reads and validates the file at path.
func Load(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	return Parse(b, os.LookupEnv)
}

// Parse decodes and validates a configuration; lookup resolves ${NAME}.
func Parse(b []byte, lookup func(string) (string, bool)) (Config, error) {
	cfg := Default()
	lines, err := decodeStrict(b, &cfg, lookup)
	if err != nil {
		return Config{}, err
	}
	cfg.lines = lines
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// BaseURL returns public_url as a URL without a trailing slash.
func (c *Config) BaseURL() string { return strings.TrimRight(c.PublicURL, "/") }

// Validate checks the values that YAML types cannot: enums, ranges,
// references. Which keys a provider entry may and must carry depends on its
// type: CheckProviders checks that, with adapters/registry's table.
func (c *Config) Validate() error {
	var errs []error
	add := func(line int, key, format string, args ...any) {
		errs = append(errs, errAt(line, key, format, args...))
	}
	// at reports at the line of key, or of the nearest enclosing key, in the file.
	at := func(key, format string, args ...any) { add(c.lineOf(key), key, format, args...) }
	if c.Listen == "" {
		at("listen", "must not be empty")
	}
	if c.PublicURL == "" {
		c.PublicURL = "http://" + c.Listen
	}
	if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		at("public_url", "must be an absolute http(s) URL without query or fragment, got %q", c.PublicURL)
	}
	switch {
	case c.Store != "memory" && c.Store != "redis":
		at("store", "must be memory or redis, got %q", c.Store)
	case c.Store == "memory" && c.DataDir == "":
		at("data_dir", "must not be empty with store: memory")
	case c.Store == "redis" && !c.RedisURL.IsSet():
		add(c.lineOf("store"), "redis_url", "required with store: redis")
	case c.Store == "redis":
		errs = append(errs, c.checkRedis()...)
	}
	if err := checkRedisPrefix(c.RedisPrefix); err != nil {
		at("redis_prefix", "%v", err)
	}
	for i, p := range c.TrustedProxies {
		if !validProxy(p) {
			at(fmt.Sprintf("trusted_proxies[%d]", i), "must be an IP address or a CIDR, got %q", p)
		}
	}
	v := c.Verification
	if v.TTL < time.Second || v.TTL > 24*time.Hour {
		at("verification.ttl", "must be between 1s and 24h, got %s", v.TTL)
	}
	if v.CodeLength < 4 || v.CodeLength > 16 {
		at("verification.code_length", "must be between 4 and 16, got %d", v.CodeLength)
	}
	if v.MaxAttempts < 1 {
		at("verification.max_attempts", "must be at least 1, got %d", v.MaxAttempts)
	}
	errs = append(errs, c.checkChannels()...)
	l := c.Limits
	for _, lim := range []struct {
		key string
		v   float64
	}{
		{"creates_per_key_per_second", l.CreatesPerKeyPerSecond},
		{"creates_per_number_per_hour", float64(l.CreatesPerNumberPerHour)},
		{"unmatched_per_sender_per_hour", float64(l.UnmatchedPerSenderPerHour)},
		{"capture_guesses_per_sender_per_hour", float64(l.CaptureGuessesPerSenderPerHour)},
		{"streams_per_key", float64(l.StreamsPerKey)},
		{"page_streams_per_session", float64(l.PageStreamsPerSession)},
		{"max_connections", float64(l.MaxConnections)},
	} {
		if !(lim.v >= 0) {
			at("limits."+lim.key, "must not be negative (0 = unlimited), got %v", lim.v)
		}
	}
	if c.Retention < time.Minute {
		at("retention", "must be at least 1m, got %s", c.Retention)
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.LogLevel) {
		at("log_level", "must be debug, info, warn or error, got %q", c.LogLevel)
	}
	if c.AdminListen != "" {
		if !isHostPort(c.AdminListen) {
			at("admin_listen", "must be host:port, got %q", c.AdminListen)
		} else if sameAddr(c.AdminListen, c.Listen) {
			at("admin_listen", "must differ from listen (%s)", c.Listen)
		}
	}
	if c.ShutdownDelay < 0 || c.ShutdownDelay > 5*time.Minute {
		at("shutdown_delay", "must be between 0s and 5m, got %s", c.ShutdownDelay)
	}
	if len(c.APIKeys) == 0 && !c.Dev {
		at("api_keys", "at least one API key is required")
	}
	keyNames := map[string]bool{}
	for i, k := range c.APIKeys {
		key := fmt.Sprintf("api_keys[%d]", i)
		if k.Name == "" {
			add(k.line, key+".name", "must not be empty")
		} else if keyNames[k.Name] {
			add(k.line, key+".name", "duplicate name %q", k.Name)
		}
		keyNames[k.Name] = true
		if k.AppName == "" {
			c.APIKeys[i].AppName = k.Name
		} else if utf8.RuneCountInString(k.AppName) > 100 || strings.ContainsFunc(k.AppName, unicode.IsControl) {
			add(k.line, key+".app_name", "must be at most 100 characters, without control characters")
		}
		switch {
		case k.Key.IsSet() == (k.KeySHA256 != ""):
			add(k.line, key, "set exactly one of key and key_sha256")
		case k.KeySHA256 != "" && !isHex(k.KeySHA256, 64):
			add(k.line, key+".key_sha256", "must be 64 hex digits")
		case k.Key.IsSet() && len(k.Key.Reveal()) < 16:
			add(k.line, key+".key", "must be at least 16 characters")
		}
		if k.WebhookURL != "" {
			if u, err := url.Parse(k.WebhookURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				add(k.line, key+".webhook_url", "must be an absolute http(s) URL")
			} else if u.Scheme == "http" && !c.Events.AllowPrivateDestinations {
				add(k.line, key+".webhook_url", "must be https (http only with events.allow_private_destinations)")
			} else if !k.WebhookSecret.IsSet() {
				// Events could not be signed: every one would be dropped.
				add(k.line, key+".webhook_secret", "is required with webhook_url (events are signed with it)")
			}
		}
		if k.WebhookSecret.IsSet() {
			raw, ok := strings.CutPrefix(k.WebhookSecret.Reveal(), "whsec_")
			if b, err := base64.StdEncoding.DecodeString(raw); !ok || err != nil || len(b) < 16 {
				add(k.line, key+".webhook_secret", "must be whsec_ followed by the base64 of at least 16 bytes")
			}
		}
	}
	errs = append(errs, c.duplicateKeys()...)
	providerNames := map[string]bool{}
	for i, p := range c.Providers {
		key := fmt.Sprintf("providers[%d]", i)
		if !validName(p.Name) {
			add(p.line, key+".name", "must be 1-64 characters of a-z, 0-9, - and _, got %q", p.Name)
		} else if providerNames[p.Name] {
			add(p.line, key+".name", "duplicate name %q", p.Name)
		}
		providerNames[p.Name] = true
		if p.APIURL != "" {
			if err := CheckAPIURL(p.APIURL); err != nil {
				add(p.line, key+".api_url", "%v", err)
			}
		}
	}
	if len(c.Numbers) == 0 {
		at("numbers", "at least one receiving number is required")
	}
	seen := map[string]bool{}
	numberIDs := map[string]string{}
	for i, n := range c.Numbers {
		key := fmt.Sprintf("numbers[%d]", i)
		if !isE164(n.Number) {
			add(n.line, key+".number", "must be E.164 (+ and 8 to 15 digits), got %q", n.Number)
		} else if seen[n.Number] {
			add(n.line, key+".number", "duplicate number %s", n.Number)
		}
		seen[n.Number] = true
		if !providerNames[n.Provider] {
			add(n.line, key+".provider", "no provider named %q", n.Provider)
		}
		for j, cc := range n.Countries {
			if cc != "*" && !isCountry(cc) {
				at(fmt.Sprintf("%s.countries[%d]", key, j), "%q is not an ISO 3166-1 alpha-2 country code (or \"*\")%s", cc, countryHint(cc))
			}
		}
		if !(n.Weight >= 0) || math.IsInf(n.Weight, 0) {
			at(key+".weight", "must be a number >= 0 (0 drains the number), got %v", n.Weight)
		}
		errs = append(errs, c.checkNumberChannels(i)...)
		if id := n.PhoneNumberID; id != "" {
			if len(id) > 32 || strings.Trim(id, "0123456789") != "" {
				at(key+".phone_number_id", "must be the digits of the number's Phone number ID in Meta's WhatsApp Manager, got %q", id)
			} else if prev, dup := numberIDs[id]; dup {
				at(key+".phone_number_id", "the same phone_number_id as %s", prev)
			}
			numberIDs[id] = key
		}
	}
	return errors.Join(errs...)
}

func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' && r != '_' {
			return false
		}
	}
	return true
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	return strings.Trim(strings.ToLower(s), "0123456789abcdef") == ""
}

func isE164(s string) bool {
	if len(s) < 9 || len(s) > 16 || s[0] != '+' || s[1] == '0' {
		return false
	}
	return strings.Trim(s[1:], "0123456789") == ""
}
