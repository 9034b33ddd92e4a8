package conformance

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/mogate/mogate/adapters"
)

// reply is the target's answer to a webhook.
type reply struct {
	status int
	body   string
	date   time.Time // its Date header; zero when absent
}

// reason is the error code and message of an error body, "" when the body
// has none.
func (r reply) reason() string {
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if json.Unmarshal([]byte(r.body), &e) != nil || e.Error.Code == "" {
		return fmt.Sprintf("%.200q", r.body)
	}
	return e.Error.Code + " (" + e.Error.Message + ")"
}

// publicBase is the target's public_url as a page_url it returned shows
// it (public_url + "/v/<token>"); "" when that cannot be told.
func publicBase(pageURL string) string {
	i := strings.LastIndex(pageURL, "/v/")
	if i <= 0 {
		return ""
	}
	return strings.TrimRight(pageURL[:i], "/")
}

// refusal explains why the target refused (401/403) req, which the runner
// signed with good for t.PublicURL. What the runner can establish is
// named alone: a public_url other than the target's (targetURL, from its
// page_url; "" when unknown), or a clock too far off for the scheme; once
// the URL is ruled out, the entry's webhook secrets or its account id.
// Otherwise the candidates are listed, likeliest first. The target's
// answer tells nothing more (a refused signature does not say which part
// was wrong), and no secret is shown.
func refusal(t Target, f Fixture, good adapters.Adapter, req *adapters.Request, rp reply, targetURL string) string {
	head := fmt.Sprintf("answered %d %s: ", rp.status, rp.reason())
	urlSigned := signsURL(good, req)
	if urlSigned && targetURL != "" && targetURL != t.PublicURL {
		advice := "pass --public-url " + targetURL
		if f := t.PublicURLFrom; f != "" && f != "--public-url" && f != "--target" {
			advice = "correct the public_url of the configuration, or " + advice
		}
		return head + fmt.Sprintf("the target's public_url is %s (the base of the page_url it returns), but the runner signed for %s%s: %s",
			targetURL, t.PublicURL, from(t), advice)
	}
	if ms, ok := good.(MaxSkewer); ok && !rp.date.IsZero() {
		skew := time.Since(rp.date).Abs().Round(time.Second)
		if skew > ms.MaxSkew()-2*time.Second {
			return head + fmt.Sprintf("the target's clock is %s off the runner's (its Date header), beyond the %s the %s scheme allows: synchronise the clocks",
				skew, ms.MaxSkew(), f.Provider)
		}
	}
	entry := "the target's entry " + entryName(f) + " differs from the one the runner signed with: "
	if keys := signingKeys(f.Provider); len(keys) > 0 {
		entry += "its " + strings.Join(keys, " or ")
	} else {
		entry += "its keys"
	}
	if acc := accountDesc(f.Provider, f.Secrets); acc != "" {
		entry += ", or " + acc
	}
	switch {
	case !urlSigned:
		return head + "the " + f.Provider + " scheme does not sign the URL, so " + entry
	case targetURL != "":
		return head + targetURL + " is the target's public_url and the runner signed for it, so " + entry
	}
	return head + fmt.Sprintf("likely causes, in order: the target's public_url is not %s, which the runner signed for%s (pass the target's as --public-url); %s",
		t.PublicURL, from(t), entry)
}

func from(t Target) string {
	if t.PublicURLFrom == "" {
		return ""
	}
	return " (" + t.PublicURLFrom + ")"
}

// signsURL tells whether good's scheme covers the request URL: the same
// request for another host no longer verifies.
func signsURL(good adapters.Adapter, req *adapters.Request) bool {
	u := *req.URL
	u.Host = "conformance.invalid"
	c := *req
	c.URL, c.Header = &u, req.Header.Clone()
	return good.Verify(&c) != nil
}

// entryName is the provider entry the fixture's requests are posted to.
func entryName(f Fixture) string {
	p := strings.TrimPrefix(f.Requests[0].Path, "/webhooks/")
	p, _, _ = strings.Cut(p, "?")
	p, _, _ = strings.Cut(p, "/")
	return p
}
