package config

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// DevCredentials are the secrets of dev mode. They are made on first start
// and kept in data_dir so that `mogate sms simulate` and a restart see the
// same ones.
type DevCredentials struct {
	APIKey        string `json:"api_key"`
	AuthToken     string `json:"dev_auth_token"`
	WebhookSecret string `json:"webhook_secret"`
}

// DevCredentialsFile is the file in data_dir that holds DevCredentials.
const DevCredentialsFile = "dev-credentials.json"

// DevNumbers are the two demo receiving numbers of dev mode (a US and a UK number).
var DevNumbers = []string{"+14155550100", "+447700900123"}

// Dev returns the dev mode configuration (docs/configuration.md): 127.0.0.1:8080, data
// in ./mogate-data, one provider "dev" of type twilio, two demo numbers, one
// API key. The credentials are read from data_dir, or created there when
// create is true.
func Dev(dataDir string, create bool) (Config, DevCredentials, error) {
	cfg := Default()
	cfg.Dev = true
	cfg.DataDir = dataDir
	cfg.PublicURL = "http://" + cfg.Listen
	creds, err := LoadDevCredentials(dataDir, create)
	if err != nil {
		return Config{}, DevCredentials{}, err
	}
	cfg.APIKeys = []APIKey{{Name: "dev", Key: Secret(creds.APIKey), WebhookSecret: Secret(creds.WebhookSecret)}}
	cfg.Providers = []Provider{{Name: "dev", Type: "twilio", AuthToken: Secret(creds.AuthToken)}}
	cfg.Numbers = []Number{
		{Number: DevNumbers[0], Provider: "dev", Countries: []string{"*"}, Weight: 1},
		{Number: DevNumbers[1], Provider: "dev", Countries: []string{"GB", "IE"}, Weight: 1},
	}
	// Dev mode is for trying things out by hand: no per-number create limit,
	// and events may go to http and local receivers.
	cfg.Limits.CreatesPerNumberPerHour = 0
	cfg.Events.AllowPrivateDestinations = true
	// No load balancer watches /readyz in dev mode: SIGTERM stops at once.
	cfg.ShutdownDelay = 0
	if err := cfg.Validate(); err != nil {
		return Config{}, DevCredentials{}, err
	}
	return cfg, creds, nil
}

// LoadDevCredentials reads data_dir/dev-credentials.json; with create it
// makes the directory and the file (mode 0600) when they do not exist.
func LoadDevCredentials(dataDir string, create bool) (DevCredentials, error) {
	path := filepath.Join(dataDir, DevCredentialsFile)
	var c DevCredentials
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &c); err != nil || c.APIKey == "" || c.AuthToken == "" {
			return c, fmt.Errorf("config: %s is damaged; delete it to make new dev credentials", path)
		}
		return c, nil
	case !errors.Is(err, fs.ErrNotExist) || !create:
		return c, fmt.Errorf("config: dev credentials: %w", err)
	}
	c = DevCredentials{
		APIKey:        "mgk_dev_" + randomHex(16),
		AuthToken:     randomHex(16),
		WebhookSecret: "whsec_" + base64.StdEncoding.EncodeToString(randomBytes(24)),
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return c, fmt.Errorf("config: %w", err)
	}
	b, _ = json.MarshalIndent(c, "", "  ") //nolint:gosec // G117: the dev config file (0600) is where its secrets live
	if err := os.WriteFile(path, append(b, '\n'), 0o600); err != nil {
		return c, fmt.Errorf("config: %w", err)
	}
	return c, nil
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return b
}

func randomHex(n int) string { return hex.EncodeToString(randomBytes(n)) }
