package provision

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// Entry is one provider entry of the configuration with its pool numbers.
type Entry struct {
	Name, Type string
	// Client is the entry's REST API; nil with Err (it could not be made,
	// e.g. a missing credential) or Manual (the type has no API).
	Client Client
	Err    error
	Manual string // how to point a number by hand, for types without an API; {url} stands for URL
	// Numbers are the entry's pool numbers (E.164), URL where their inbound
	// SMS must go: public_url/webhooks/{entry name}.
	Numbers []string
	URL     string
	// Channels are the channels of each pool number (config `channels`);
	// a number without an entry serves sms only. Inbound SMS are pointed
	// at URL whatever the channels; a number that lists "call" also has
	// its inbound calls pointed at URL (a VoiceClient's numbers).
	Channels map[string][]string
	// Secrets are the entry's credentials: no error text carries them.
	Secrets []string
}

// takesCalls reports whether the entry lists the call channel for number.
func (e Entry) takesCalls(number string) bool {
	return slices.Contains(e.Channels[number], "call")
}

// Row is one pool number's line of `mogate numbers list` or `sync`.
type Row struct {
	Number, Entry, Type string
	Before, After       string // where inbound SMS went before and after ("URL (METHOD)")
	// Action, for sync: unchanged, updated, would update, created
	// application, not found, failed: <reason>, manual: <how>. For list
	// (Inspect): in sync, points elsewhere, not found, failed: <reason>,
	// manual: <how>.
	Action string
	Note   string // shared settings and what else was done
	OK     bool   // the number ends (or, inspecting, is) in sync, or is manual
}

// Inspect reports where each pool number's inbound SMS go now. It makes no
// write call.
func Inspect(ctx context.Context, entries []Entry) []Row {
	return run(ctx, entries, false, false)
}

// Sync points every pool number with an API at its entry's URL, method
// POST. With dryRun it makes no write call and says what it would do; a
// number already in sync costs no write call either.
func Sync(ctx context.Context, entries []Entry, dryRun bool) []Row {
	return run(ctx, entries, true, dryRun)
}

func run(ctx context.Context, entries []Entry, write, dryRun bool) []Row {
	var rows []Row
	for _, e := range entries {
		rows = append(rows, entryRows(ctx, e, write, dryRun)...)
	}
	return rows
}

func entryRows(ctx context.Context, e Entry, write, dryRun bool) []Row {
	rows := make([]Row, len(e.Numbers))
	for i, n := range e.Numbers {
		rows[i] = Row{Number: n, Entry: e.Name, Type: e.Type}
	}
	fail := func(err error) []Row {
		for i := range rows {
			rows[i].Action = "failed: " + Scrub(err, e.Secrets...)
		}
		return rows
	}
	switch {
	case e.Err != nil:
		return fail(e.Err)
	case e.Client == nil:
		for i := range rows {
			rows[i].Action, rows[i].OK = "manual: "+strings.ReplaceAll(e.Manual, "{url}", e.URL), true
		}
		return rows
	}
	all, err := e.Client.List(ctx)
	if err != nil {
		return fail(err)
	}
	byNumber := map[string]Number{}
	users := map[string]int{} // numbers of the account per shared holder
	for _, n := range all {
		byNumber[n.Number] = n
		if n.HolderID != "" {
			users[n.HolderID]++
		}
	}
	inPool := map[string]int{} // pool numbers of this entry per holder
	for _, num := range e.Numbers {
		if n, ok := byNumber[num]; ok && n.HolderID != "" {
			inPool[n.HolderID]++
		}
	}
	done := map[string]Action{} // holders already pointed in this run
	for i := range rows {
		r := &rows[i]
		n, ok := byNumber[r.Number]
		if !ok {
			r.Action = string(NotFound)
			continue
		}
		r.Before, r.Note = show(n.URL, n.Method, n.Missing), n.Note
		if n.HolderID != "" {
			r.Note = join(r.Note, n.Holder)
			if others := users[n.HolderID] - inPool[n.HolderID]; others > 0 {
				r.Note = join(n.Note, fmt.Sprintf("shared: %s also serves %d number(s) outside the pool", n.Holder, others))
			}
		}
		in := inSync(n, e.URL)
		after := show(e.URL, http.MethodPost, "")
		if n.Method == "" && n.Missing == "" {
			after = show(e.URL, "", "") // the provider sets no method per number
		}
		switch {
		case !write && in:
			r.Action, r.OK, r.After = "in sync", true, r.Before
		case !write:
			r.Action, r.After = "points elsewhere", r.Before
		case in:
			r.Action, r.OK, r.After = string(Unchanged), true, r.Before
		case n.Blocked != "":
			r.Action, r.After = "failed: "+n.Blocked, r.Before
		case dryRun:
			r.Action, r.After = string(WouldUpdate), after
			if n.Missing == "no application" {
				r.Note = join(r.Note, "would attach to application "+AppName)
			}
		case n.HolderID != "" && done[n.HolderID] != "":
			r.Action, r.OK, r.After = string(Updated), true, after
			r.Note = join(r.Note, "with the number above")
		default:
			action, note, err := e.Client.Point(ctx, n, e.URL)
			if err != nil {
				r.Action, r.After = "failed: "+Scrub(err, e.Secrets...), r.Before
				continue
			}
			r.Action, r.OK, r.After, r.Note = string(action), true, after, join(r.Note, note)
			if n.HolderID != "" {
				done[n.HolderID] = action
			}
		}
		if e.takesCalls(r.Number) {
			voiceRow(ctx, e, n, r, write, dryRun)
		}
	}
	return rows
}

// voiceRow adds the number's calls to its row: where they go (a note),
// and, writing, points them at the entry's URL. A number whose calls are
// not in sync is not in sync.
func voiceRow(ctx context.Context, e Entry, n Number, r *Row, write, dryRun bool) {
	if strings.HasPrefix(r.Action, "failed") {
		return
	}
	vc, ok := e.Client.(VoiceClient)
	if !ok {
		r.Action, r.OK = "failed: mogate cannot point a "+e.Type+" number's calls; point them by hand", false
		return
	}
	before, after := show(n.VoiceURL, n.VoiceMethod, n.VoiceMissing), show(e.URL, http.MethodPost, "")
	in := n.VoiceMissing == "" && n.VoiceURL == e.URL && strings.EqualFold(n.VoiceMethod, http.MethodPost)
	// What the row says when only the calls change.
	smsDone := r.Action == "in sync" || r.Action == string(Unchanged)
	switch {
	case in:
		r.Note = join(r.Note, "calls: "+before)
	case !write:
		r.Note = join(r.Note, "calls go to "+before)
		if smsDone {
			r.Action, r.OK = "points elsewhere", false
		}
	case n.VoiceBlocked != "":
		r.Action, r.OK = "failed: "+n.VoiceBlocked, false
	case dryRun:
		r.Note = join(r.Note, "calls would go from "+before+" to "+after)
		if smsDone {
			r.Action, r.OK = string(WouldUpdate), false
		}
	default:
		action, note, err := vc.PointVoice(ctx, n, e.URL)
		if err != nil {
			r.Action, r.OK = "failed: calls: "+Scrub(err, e.Secrets...), false
			return
		}
		r.Note = join(join(r.Note, "calls: "+before+" -> "+after), note)
		if smsDone {
			r.Action = string(action)
		}
	}
}

// inSync: the URL, and method POST where the number has one.
func inSync(n Number, want string) bool {
	return n.Missing == "" && n.URL == want && (n.Method == "" || strings.EqualFold(n.Method, http.MethodPost))
}

func show(url, method, missing string) string {
	switch {
	case missing != "":
		return "(" + missing + ")"
	case url == "":
		return "(none)"
	case method == "":
		return url
	}
	return url + " (" + strings.ToUpper(method) + ")"
}

func join(a, b string) string {
	if a == "" || b == "" {
		return a + b
	}
	return a + "; " + b
}
