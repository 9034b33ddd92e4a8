package redisstore

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"math/big"
	"strings"
	"time"

	"github.com/mogate/mogate/matcher"
)

// tagOf is the hash tag of a receiving number: every key of the number
// lives in its slot.
func tagOf(to string) string {
	sum := sha256.Sum256([]byte(to))
	return hex.EncodeToString(sum[:4])
}

func key(tag, name string) string { return "mogate:{" + tag + "}:" + name }

// tagKeys are the keys every library function takes, in library.lua's order.
func tagKeys(tag string, extra ...string) []string {
	ks := make([]string, 0, 10+len(extra))
	for _, n := range [...]string{"s", "tok", "pairs", "codes", "exp", "done", "ev", "e", "pend", "seq"} {
		ks = append(ks, key(tag, n))
	}
	return append(ks, extra...)
}

const (
	tagsKey    = "mogate:tags"
	wakeChan   = "mogate:wake"
	tokenPref  = "pt_"
	defaultPre = "vrf_"
)

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newID returns prefix and 16 bytes, base32: the tag's 4 bytes, then 96
// random bits. The same shape as the matcher's ids.
func newID(prefix, tag string) string {
	var b [16]byte
	hex.Decode(b[:4], []byte(tag))
	_, _ = rand.Read(b[4:])
	return prefix + idEncoding.EncodeToString(b[:])
}

// tagOfID returns the tag an id or page token carries.
func tagOfID(id string) (string, bool) {
	i := strings.LastIndexByte(id, '_')
	if i < 0 || len(id)-i-1 != 26 {
		return "", false
	}
	p := id[:i+1]
	if p != tokenPref && !matcher.ValidIDPrefix(p) {
		return "", false
	}
	var b [16]byte
	if n, err := idEncoding.Decode(b[:], []byte(id[i+1:])); err != nil || n != 16 {
		return "", false
	}
	return hex.EncodeToString(b[:4]), true
}

func randomDigits(n int) string {
	b := make([]byte, n)
	ten := big.NewInt(10)
	for i := range b {
		d, _ := rand.Int(rand.Reader, ten)
		b[i] = byte('0' + d.Int64())
	}
	return string(b)
}

// wire is a session as library.lua reads and writes it; times are unix
// milliseconds of the store's clock.
type wire struct {
	ID        string `json:"id"`
	Key       string `json:"key"`
	API       string `json:"api"`
	Number    string `json:"num"`
	Code      string `json:"code"`
	Norm      string `json:"norm"`
	To        string `json:"to"`
	Country   string `json:"ctry"`
	Language  string `json:"lang"`
	Callback  string `json:"cb"`
	Redirect  string `json:"rd"`
	Metadata  []byte `json:"md"`
	PageToken string `json:"pt"`
	IdemKey   string `json:"ik"`
	ReqHash   string `json:"rh"`
	Max       int    `json:"max"`
	Created   int64  `json:"cr"`
	Expires   int64  `json:"exp"`
	Status    int    `json:"st"`
	Attempts  int    `json:"att"`
	Verified  string `json:"vn"`
	Finished  int64  `json:"fin"`
	Provider  string `json:"pv"`
	MessageID string `json:"mid"`
	Reason    string `json:"rs"`
	Notified  int    `json:"nt"`
	Seq       int64  `json:"seq"`
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

// session renders w as the public Session, as it reads at now: a pending
// session past its expiry is expired.
func (w *wire) session(now time.Time) matcher.Session {
	s := matcher.Session{
		ID: w.ID, Key: w.Key, API: w.API, Number: w.Number, Code: w.Code, To: w.To, Country: w.Country,
		Language: w.Language, Callback: w.Callback, Redirect: w.Redirect, Metadata: w.Metadata,
		PageToken: w.PageToken, IdemKey: w.IdemKey, ReqHash: w.ReqHash, MaxAttempts: w.Max,
		CreatedAt: fromMS(w.Created), ExpiresAt: fromMS(w.Expires), Status: matcher.Status(w.Status),
		Attempts: w.Attempts, VerifiedNumber: w.Verified, FinishedAt: fromMS(w.Finished),
		Provider: w.Provider, MessageID: w.MessageID, Reason: matcher.Reason(matcher.Status(w.Status), w.Reason), Notified: matcher.Notified(w.Notified),
	}
	if s.Status == matcher.Pending && !now.Before(s.ExpiresAt) {
		s.Status, s.FinishedAt, s.Reason = matcher.Expired, s.ExpiresAt, matcher.ReasonExpired
	}
	return s
}
