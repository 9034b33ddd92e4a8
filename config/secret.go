package config

import (
	"fmt"
	"log/slog"
)

// Secret holds a credential. Every way of printing, logging or marshalling it
// yields "[redacted]"; only Reveal returns the value, and only code that
// needs the bytes to sign or verify may call it.
type Secret string

const redacted = "[redacted]"

// Reveal returns the secret value.
func (s Secret) Reveal() string { return string(s) }

// IsSet reports whether the secret is non-empty.
func (s Secret) IsSet() bool { return s != "" }

// String implements fmt.Stringer without revealing the value.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString keeps %#v from printing the value.
func (s Secret) GoString() string { return s.String() }

// Format keeps every fmt verb (%s, %v, %q, %x, ...) from printing the value.
func (s Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(s.String())) }

// LogValue keeps slog from printing the value.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalText keeps encoders (JSON, YAML, ...) from printing the value.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }
