package gateway

import (
	"net/http"
	"net/url"
	"unicode/utf8"
)

// Request field limits at create (docs/api.md); longer is 422 (400 on the
// Contiguity routes, which document 400 for invalid input).
const (
	maxURLLen      = 2 << 10 // callback_url / success_url and redirect_url, bytes
	maxHintLen     = 16      // country and language, characters
	maxMetadataLen = 4 << 10 // metadata as sent, bytes
)

// checkFields enforces the length limits and the URL policy of a create:
// events go to absolute https URLs (http only with
// events.allow_private_destinations); the user's browser follows
// redirect_url, which must be https (http only in dev mode). Any host is
// fine here; where an event may be delivered is decided when it is.
func (s *Server) checkFields(p createParams) error {
	callback := "callback_url"
	if p.API == "contiguity" {
		callback = "success_url"
	}
	if err := checkURL(callback, p.Callback, s.cfg.Events.AllowPrivateDestinations); err != nil {
		return err
	}
	if err := checkURL("redirect_url", p.Redirect, s.cfg.Dev); err != nil {
		return err
	}
	if utf8.RuneCountInString(p.Country) > maxHintLen {
		return errorf(http.StatusUnprocessableEntity, "invalid_country", "country must be at most %d characters", maxHintLen)
	}
	if utf8.RuneCountInString(p.Language) > maxHintLen {
		return errorf(http.StatusUnprocessableEntity, "invalid_language", "language must be at most %d characters", maxHintLen)
	}
	return nil
}

// checkURL allows "" (not set) or an absolute https URL with a host of at
// most maxURLLen bytes; http too when allowHTTP.
func checkURL(field, raw string, allowHTTP bool) error {
	if raw == "" {
		return nil
	}
	if len(raw) > maxURLLen {
		return errorf(http.StatusUnprocessableEntity, "invalid_url", "%s must be at most %d bytes", field, maxURLLen)
	}
	u, err := url.Parse(raw)
	if err == nil && u.Hostname() != "" && (u.Scheme == "https" || allowHTTP && u.Scheme == "http") {
		return nil
	}
	if allowHTTP {
		return errorf(http.StatusUnprocessableEntity, "invalid_url", "%s must be an absolute http or https URL", field)
	}
	return errorf(http.StatusUnprocessableEntity, "invalid_url", "%s must be an absolute https URL", field)
}
