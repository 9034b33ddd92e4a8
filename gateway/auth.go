package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/mogate/mogate/config"
)

// keyring finds API keys by the SHA-256 of the presented bearer token, so the
// comparison never touches the secret itself byte by byte.
type keyring map[[32]byte]*config.APIKey

func newKeyring(keys []config.APIKey) keyring {
	k := keyring{}
	for i := range keys {
		key := &keys[i]
		var sum [32]byte
		if key.Key.IsSet() {
			sum = sha256.Sum256([]byte(key.Key.Reveal()))
		} else {
			b, _ := hex.DecodeString(strings.ToLower(key.KeySHA256))
			copy(sum[:], b)
		}
		k[sum] = key
	}
	return k
}

const apiKeyCtx = "mogate.apikey" //nolint:gosec // G101: a context key name, not a key

// bearerToken returns the API key of an Authorization header: "Bearer
// <key>", or "Token <key>" as Contiguity's JS SDK sends it (docs/api.md, "Contiguity-compatible").
// The scheme is case-insensitive (RFC 9110 §11.1).
func bearerToken(h string) (string, bool) {
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") && !strings.EqualFold(scheme, "Token") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// authenticate requires a known API key (bearerToken) and stores its key.
func (s *Server) authenticate(c *gin.Context) {
	token, ok := bearerToken(c.GetHeader("Authorization"))
	if !ok {
		c.Header("WWW-Authenticate", `Bearer realm="mogate"`)
		fail(c, errorf(http.StatusUnauthorized, "missing_api_key", "send Authorization: Bearer <api key>"))
		return
	}
	key, ok := s.live().keys[sha256.Sum256([]byte(token))]
	if !ok {
		c.Header("WWW-Authenticate", `Bearer realm="mogate", error="invalid_token"`)
		fail(c, errorf(http.StatusUnauthorized, "invalid_api_key", "the API key is not valid"))
		return
	}
	c.Set(apiKeyCtx, key)
	c.Next()
}

func apiKey(c *gin.Context) *config.APIKey { return c.MustGet(apiKeyCtx).(*config.APIKey) }
