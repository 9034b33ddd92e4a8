package redisstore

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

var (
	luaComment    = regexp.MustCompile(`--[^\n]*`)
	luaFuncStart  = regexp.MustCompile(`(?m)^local function (\w+)\(`)
	luaRegistered = regexp.MustCompile(`redis\.register_function\(LIB \.\. '_(\w+)', (\w+)\)`)
	luaConstWord  = regexp.MustCompile(`\b[A-Z][A-Z0-9_]*\b`)
	luaHeaderLine = regexp.MustCompile(`(?m)^local (\w+) = (\d+)$`)
)

// luaBlock is one top-level Lua function: the keys constants it indexes
// (keys[X]) and the functions it passes keys to.
type luaBlock struct {
	refs, passes []string
	comment      string // the comment lines right above it
}

// parseLua splits src into its top-level functions; ident is how the
// code names its keys (keys in the library's functions, KEYS in a
// script, which is one block named script). Problems are uses of ident
// other than ident[CONST] and passing ident whole to a function.
func parseLua(src, ident, script string) (map[string]*luaBlock, []string) {
	ref := regexp.MustCompile(`\b` + ident + `\[([^\]]*)\]`)
	pass := regexp.MustCompile(`(\w+)\(` + ident + `\s*[,)]`)
	any := regexp.MustCompile(`\b` + ident + `\b`)
	if i := strings.Index(src, "\nredis.register_function"); i >= 0 {
		src = src[:i]
	}
	type span struct {
		name, text, comment string
	}
	var spans []span
	if script != "" {
		spans = []span{{name: script, text: src}}
	} else {
		locs := luaFuncStart.FindAllStringSubmatchIndex(src, -1)
		for i, l := range locs {
			end := len(src)
			if i+1 < len(locs) {
				end = locs[i+1][0]
			}
			var comment []string
			lines := strings.Split(src[:l[0]], "\n")
			for j := len(lines) - 2; j >= 0 && strings.HasPrefix(lines[j], "--"); j-- {
				comment = append([]string{lines[j]}, comment...)
			}
			text := src[l[0]:end]
			text = text[strings.IndexByte(text, '\n')+1:] // past the parameters
			spans = append(spans, span{src[l[2]:l[3]], text, strings.Join(comment, "\n")})
		}
	}
	blocks := map[string]*luaBlock{}
	var problems []string
	for _, sp := range spans {
		code := luaComment.ReplaceAllString(sp.text, "")
		b := &luaBlock{comment: sp.comment}
		for _, m := range ref.FindAllStringSubmatch(code, -1) {
			b.refs = append(b.refs, m[1])
		}
		for _, m := range pass.FindAllStringSubmatch(code, -1) {
			b.passes = append(b.passes, m[1])
		}
		if n := len(any.FindAllString(code, -1)); n != len(b.refs)+len(b.passes) {
			problems = append(problems, fmt.Sprintf("%s uses %s other than as %s[CONST] or a helper's argument", sp.name, ident, ident))
		}
		blocks[sp.name] = b
	}
	return blocks, problems
}

// checkLua compares Lua code with the functions fs that it defines (src
// the library, registered with redis.register_function; or, with script
// set, a plain script of the one function fs[0] whose keys are KEYS).
func checkLua(src string, fs []libFunc, script bool) []string {
	ident, name := "keys", ""
	if script {
		ident, name = "KEYS", fs[0].name
	}
	blocks, problems := parseLua(src, ident, name)
	consts := map[string]bool{} // every key constant of fs
	allowed := map[string]map[string]bool{}
	for _, f := range fs {
		allowed[f.name] = map[string]bool{}
		if f.tag {
			for _, t := range tagNames {
				consts[t.lua], allowed[f.name][t.lua] = true, true
			}
		}
		for _, e := range f.extra {
			consts[f.luaConst(e)], allowed[f.name][f.luaConst(e)] = true, true
		}
	}
	for bn, b := range blocks {
		for _, r := range b.refs {
			if !consts[r] {
				problems = append(problems, fmt.Sprintf("%s indexes %s[%s]: not a key constant of keys.go's libFuncs", bn, ident, r))
			}
		}
		for _, p := range b.passes {
			if blocks[p] == nil {
				problems = append(problems, fmt.Sprintf("%s passes %s to %s, which is no function of the library", bn, ident, p))
			}
		}
	}
	// The Lua function of each libFunc.
	impl := map[string]string{}
	if script {
		impl[name] = name
	} else {
		for _, m := range luaRegistered.FindAllStringSubmatch(src, -1) {
			impl[m[1]] = m[2]
		}
		for _, f := range fs {
			if _, ok := impl[f.name]; !ok {
				problems = append(problems, fmt.Sprintf("libFuncs has %s, which library.lua does not register", f.name))
			}
		}
		for fn := range impl {
			if allowed[fn] == nil {
				problems = append(problems, fmt.Sprintf("library.lua registers %s, which libFuncs lacks", fn))
			}
		}
	}
	usedTag := map[string]bool{}
	for _, f := range fs {
		root := blocks[impl[f.name]]
		if root == nil {
			continue
		}
		// Every key the function reaches, through helpers too.
		used, seen, todo := map[string]bool{}, map[string]bool{impl[f.name]: true}, []string{impl[f.name]}
		for len(todo) > 0 {
			b := blocks[todo[0]]
			todo = todo[1:]
			if b == nil {
				continue
			}
			for _, r := range b.refs {
				used[r] = true
			}
			for _, p := range b.passes {
				if !seen[p] {
					seen[p] = true
					todo = append(todo, p)
				}
			}
		}
		for r := range used {
			if consts[r] && !allowed[f.name][r] {
				problems = append(problems, fmt.Sprintf("%s uses %s[%s], which libFuncs does not give it", f.name, ident, r))
			}
			usedTag[r] = true
		}
		for _, e := range f.extra {
			if c := f.luaConst(e); !used[c] {
				problems = append(problems, fmt.Sprintf("libFuncs gives %s the key %s, which it never uses", f.name, c))
			} else if !script && !regexp.MustCompile(`\b`+c+`\b`).MatchString(root.comment) {
				problems = append(problems, fmt.Sprintf("the comment of %s does not name its key %s", f.name, c))
			}
		}
		for _, w := range luaConstWord.FindAllString(root.comment, -1) {
			if consts[w] && !allowed[f.name][w] {
				problems = append(problems, fmt.Sprintf("the comment of %s names %s, which libFuncs does not give it", f.name, w))
			}
		}
	}
	for _, f := range fs {
		if f.tag {
			for _, t := range tagNames {
				if !usedTag[t.lua] {
					problems = append(problems, fmt.Sprintf("the number's key %s (%s) is used by no function", t.lua, t.name))
				}
			}
			break
		}
	}
	slices.Sort(problems)
	return slices.Compact(problems)
}

// TestLibraryKeys: library.lua and the pending script index exactly the
// keys keys.go's libFuncs gives each function, and say so in comments.
func TestLibraryKeys(t *testing.T) {
	if p := checkLua(libraryBody, libFuncs, false); len(p) > 0 {
		t.Errorf("library.lua and libFuncs differ:\n%s", strings.Join(p, "\n"))
	}
	if p := checkLua(pendingBody, []libFunc{pendingFunc}, true); len(p) > 0 {
		t.Errorf("pendingScript and pendingFunc differ:\n%s", strings.Join(p, "\n"))
	}
}

// TestLibraryKeysCheck: the check of TestLibraryKeys fails when a key is
// added, dropped or moved on one side only.
func TestLibraryKeysCheck(t *testing.T) {
	withFunc := func(name string, change func(*libFunc)) []libFunc {
		fs := slices.Clone(libFuncs)
		for i := range fs {
			if fs[i].name == name {
				fs[i].extra = slices.Clone(fs[i].extra)
				change(&fs[i])
			}
		}
		return fs
	}
	lua := func(old, new string) string {
		if !strings.Contains(libraryBody, old) {
			t.Fatalf("library.lua lacks %q", old)
		}
		return strings.Replace(libraryBody, old, new, 1)
	}
	for _, c := range []struct {
		name string
		src  string
		fs   []libFunc
	}{
		{"Lua indexes a key Go lacks", lua("local d = redis.call('GET', keys[INGEST_DEDUPE])", "local d = redis.call('GET', keys[INGEST_OTHER])"), libFuncs},
		{"Lua indexes by position", lua("redis.call('HSET', keys[PART_PARTS], args[1], args[2])", "redis.call('HSET', keys[2], args[1], args[2])"), libFuncs},
		{"Lua uses a number's key Go does not give", lua("local d = redis.call('GET', keys[PART_DEDUPE])", "local d = redis.call('GET', keys[PART_DEDUPE]) or redis.call('HGET', keys[S], 'x')"), libFuncs},
		{"Lua passes keys to a helper Go does not give them", lua("local d = redis.call('GET', keys[PART_DEDUPE])", "local d = redis.call('GET', keys[PART_DEDUPE]) or load(keys, 'x')"), libFuncs},
		{"Lua aliases keys", lua("local d = redis.call('GET', keys[PART_DEDUPE])", "local k = keys\n  local d = redis.call('GET', k[PART_DEDUPE])"), libFuncs},
		{"Lua registers a function Go lacks", libraryBody + "\nredis.register_function(LIB .. '_other', ack)\n", libFuncs},
		{"Go adds a key", libraryBody, withFunc("ingest", func(f *libFunc) { f.extra = append(f.extra, "OTHER") })},
		{"Go drops a key", libraryBody, withFunc("part", func(f *libFunc) { f.extra = f.extra[:1] })},
		{"Go drops the number's keys", libraryBody, withFunc("cancel", func(f *libFunc) { f.tag = false })},
		{"Go renames a function", libraryBody, withFunc("defer", func(f *libFunc) { f.name = "postpone" })},
	} {
		p := checkLua(c.src, c.fs, false)
		if len(p) == 0 {
			t.Errorf("%s: no difference found", c.name)
		}
		t.Logf("%s: %q", c.name, p)
	}
}

// TestLuaKeyHeader: the header gives every key constant its position in
// its function's KEYS, and declares each once.
func TestLuaKeyHeader(t *testing.T) {
	h := luaKeyHeader(libFuncs...)
	got := map[string]int{}
	for _, m := range luaHeaderLine.FindAllStringSubmatch(h, -1) {
		if _, dup := got[m[1]]; dup {
			t.Errorf("%s declared twice", m[1])
		}
		got[m[1]], _ = strconv.Atoi(m[2])
	}
	want := map[string]int{}
	for _, f := range libFuncs {
		n := 0
		if f.tag {
			for i, tn := range tagNames {
				want[tn.lua] = i + 1
			}
			n = len(tagNames)
		}
		for i, e := range f.extra {
			want[f.luaConst(e)] = n + i + 1
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("header declares %v, want %v", got, want)
	}
}

// TestKeysOfEveryFunction: every function's keys are built from its
// libFuncs entry, distinct, under the prefix and, but for the
// idempotency key, in the number's slot.
func TestKeysOfEveryFunction(t *testing.T) {
	k := keyspace{"p"}
	a := keyArgs{tag: "0a0b0c0d", provider: "tw", messageID: "SM1", from: "+15550001", ref: "r", apiKey: "k", idemKey: "i", countInTag: true}
	for _, f := range append(slices.Clone(libFuncs), pendingFunc) {
		ks, err := k.keys(f, a)
		if err != nil {
			t.Errorf("%s: %v", f.name, err)
			continue
		}
		want := len(f.extra)
		if f.tag {
			want += len(tagNames)
		}
		if len(ks) != want || len(slices.Compact(slices.Sorted(slices.Values(ks)))) != want {
			t.Errorf("%s: keys %q, want %d distinct", f.name, ks, want)
		}
		for _, key := range ks {
			if !strings.HasPrefix(key, "p:") || f.name != "idem_release" && f.name != "count" && !strings.HasPrefix(key, "p:{"+a.tag+"}:") {
				t.Errorf("%s: key %q outside the prefix or the number's slot", f.name, key)
			}
		}
	}
	// On one server, ingest takes the sender's count from its own slot.
	a.countInTag = false
	if ks, err := k.keys(libFuncByName["ingest"], a); err != nil || ks[len(ks)-1] != k.verified(a.from) {
		t.Errorf("ingest on one server: keys %q, %v; want the sender's count last", ks, err)
	}
	if _, err := k.keys(libFunc{name: "x", extra: []string{"OTHER"}}, a); err == nil {
		t.Error("a key of no known name was built")
	}
}

// TestFcallArgs: the FCALL a call sends names the function, its key count
// and the keys of keys, in order, whether the tag's keys come cached
// (tagKeysOf, at register) or are named for the call, then the arguments.
func TestFcallArgs(t *testing.T) {
	k := keyspace{"p"}
	a := keyArgs{tag: "0a0b0c0d", provider: "tw", messageID: "SM1", from: "+15550001", ref: "r", apiKey: "k", idemKey: "i"}
	for _, f := range libFuncs {
		ks, err := k.keys(f, a)
		if err != nil {
			t.Fatal(err)
		}
		for _, tk := range []tagKeys{nil, k.tagKeysOf(a.tag)} {
			args, first, err := k.fcallArgs(f, "lib_"+f.name, tk, a, []any{"x", 1})
			if err != nil {
				t.Fatal(err)
			}
			want := []any{"fcall", "lib_" + f.name, len(ks)}
			for _, key := range ks {
				want = append(want, key)
			}
			want = append(want, "x", 1)
			if !slices.Equal(args, want) || first != ks[0] {
				t.Errorf("%s (cached %v): FCALL %q, first key %q; want %q, %q", f.name, tk != nil, args, first, want, ks[0])
			}
		}
	}
}

// TestKeyNamesOnlyInKeysGo: the store's other files name a number's keys
// by keys.go's constants, never by a literal, and build no key name.
func TestKeyNamesOnlyInKeysGo(t *testing.T) {
	literal := regexp.MustCompile(`\.key\([^,()]+,\s*"|":\{"|"\}:"`)
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if f == "keys.go" || f == "baseline.go" || strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range literal.FindAllString(string(b), -1) {
			t.Errorf("%s builds a key name itself: %s", f, m)
		}
	}
	// keys.go's layout comment names every key of a number.
	b, err := os.ReadFile("keys.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range tagNames {
		if !strings.Contains(string(b), "//\tP:{T}:"+n.name+" ") {
			t.Errorf("keys.go's layout comment lacks P:{T}:%s", n.name)
		}
	}
}
