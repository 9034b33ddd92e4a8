package memstore

import (
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mogate/mogate/matcher"
)

// Part is one stored part of a multipart message.
type Part struct{ Message matcher.Message }

// partials holds multipart messages until all their parts arrive.
type partials struct {
	mu sync.Mutex
	m  map[string]*partial
}

type partial struct {
	first time.Time
	parts map[int]matcher.Message
}

// partsTTL is how long an incomplete multipart message is kept.
const partsTTL = time.Hour

func (p *partials) add(msg matcher.Message, now time.Time) (matcher.Message, bool) {
	key := partsKey(msg)
	p.mu.Lock()
	defer p.mu.Unlock()
	e := p.entry(key, now)
	e.parts[msg.Part] = msg
	if len(e.parts) < msg.Parts {
		return matcher.Message{}, false
	}
	delete(p.m, key)
	nums := make([]int, 0, len(e.parts))
	for n := range e.parts {
		nums = append(nums, n)
	}
	sort.Ints(nums)
	var b strings.Builder
	for _, n := range nums {
		b.WriteString(e.parts[n].Text)
	}
	whole := msg
	whole.Text, whole.Parts, whole.Part, whole.PartsRef = b.String(), 0, 0, ""
	return whole, true
}

// addUnlessComplete stores msg, a part, unless it is the one that
// completes its message: then it stores nothing and returns false, so the
// parts stay as they were for a later add.
func (p *partials) addUnlessComplete(msg matcher.Message, now time.Time) bool {
	key := partsKey(msg)
	p.mu.Lock()
	defer p.mu.Unlock()
	e := p.m[key]
	have := 1 // the parts held once msg is added
	if e != nil {
		have = len(e.parts)
		if _, ok := e.parts[msg.Part]; !ok {
			have++
		}
	}
	if have >= msg.Parts {
		return false
	}
	p.entry(key, now).parts[msg.Part] = msg
	return true
}

// partsKey names the message msg is a part of.
func partsKey(msg matcher.Message) string {
	return strings.Join([]string{msg.Provider, msg.To, msg.From, msg.PartsRef}, "\x00")
}

// entry returns the parts held under key, made first at now if none are.
// The caller holds p.mu.
func (p *partials) entry(key string, now time.Time) *partial {
	e := p.m[key]
	if e == nil {
		e = &partial{first: now, parts: map[int]matcher.Message{}}
		p.m[key] = e
	}
	return e
}

func (p *partials) gc(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, e := range p.m {
		if now.Sub(e.first) > partsTTL {
			delete(p.m, k)
		}
	}
}

// The stored parts' part of durability: their snapshot section (uvarint n,
// then n times: first seen, uvarint k, k OpPart records), its restore, and
// the replay of OpPart.

// snapshot appends the stored parts to e.
func (p *partials) snapshot(e *enc) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e.uv(uint64(len(p.m)))
	for _, pm := range p.m {
		e.time(pm.first)
		e.uv(uint64(len(pm.parts)))
		for _, part := range pm.parts {
			r := Record{Op: OpPart, Part: &Part{Message: part}}
			e.record(&r)
		}
	}
}

// restore reads the section snapshot wrote.
func (p *partials) restore(d *dec) {
	n := d.uv()
	for i := uint64(0); i < n && d.err == nil; i++ {
		first := d.time()
		k := d.uv()
		for j := uint64(0); j < k && d.err == nil; j++ {
			r, err := decodeRecord(d.raw())
			if err != nil || r.Op != OpPart {
				d.fail()
				break
			}
			p.add(r.Part.Message, first)
		}
	}
}

// replay applies an OpPart record read back from the log.
func (p *partials) replay(r Record) {
	if r.Part != nil {
		p.add(r.Part.Message, r.At)
	}
}
