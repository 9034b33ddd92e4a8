package config

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestExampleProductionConfig: deploy/mogate.example.yaml parses and
// validates with its ${ENV} variables set, and keeps the production
// settings docs/operations.md promises (admin_listen, trusted proxies, https).
func TestExampleProductionConfig(t *testing.T) {
	b, err := os.ReadFile("../deploy/mogate.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"MOGATE_SHOP_KEY":         "shop-live-key-0123456789abcdef",
		"MOGATE_SHOP_WHSEC":       "whsec_c2hvcC1TRUNSRVRWQUxVRS13aA==",
		"TWILIO_ACCOUNT_SID":      "AC00000000000000000000000000000000",
		"TWILIO_AUTH_TOKEN":       "twilio-token",
		"VONAGE_SIGNATURE_SECRET": "vonage-signature-secret",
		"VONAGE_API_KEY":          "abcd1234",
		"VONAGE_API_SECRET":       "vonage-api-secret",
	}
	for _, line := range strings.Split(string(b), "\n") {
		line, _, _ = strings.Cut(line, "#") // comments may name variables too
		for _, m := range regexp.MustCompile(`\$\{([A-Z0-9_]+)\}`).FindAllStringSubmatch(line, -1) {
			if _, ok := env[m[1]]; !ok {
				t.Errorf("the example uses ${%s}, which this test does not set", m[1])
			}
		}
	}
	cfg, err := Parse(b, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AdminListen == "" || len(cfg.TrustedProxies) == 0 || cfg.PublicURL[:8] != "https://" || cfg.Events.AllowPrivateDestinations {
		t.Fatalf("the example lost a production setting: %+v", cfg)
	}
	if cfg.APIKeys[0].Key.Reveal() != env["MOGATE_SHOP_KEY"] {
		t.Fatal("${MOGATE_SHOP_KEY} not expanded")
	}
}
