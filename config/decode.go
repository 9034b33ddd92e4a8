package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

var (
	envRef         = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)
	envPlaceholder = regexp.MustCompile(`__mogate_env_([0-9]+)__`)
)

// hideEnvRefs swaps every ${NAME} for a placeholder that is a valid plain
// scalar anywhere, so that the YAML flow form `{auth_token: ${TOKEN}}` (docs/configuration.md) parses
// as YAML; values are put in only after parsing, so they cannot change the
// document's structure.
func hideEnvRefs(b []byte) ([]byte, []string) {
	var names []string
	out := envRef.ReplaceAllFunc(b, func(ref []byte) []byte {
		names = append(names, string(ref[2:len(ref)-1]))
		return fmt.Appendf(nil, "__mogate_env_%d__", len(names)-1)
	})
	return out, names
}

// decodeStrict parses b into out: ${NAME} in scalar values is replaced from
// lookup (an unset or empty variable is an error at its line and key), and a key that out has no field
// for is an error naming the key and its line. It returns the line of every
// key and sequence item by path ("numbers[0].countries[1]").
func decodeStrict(b []byte, out any, lookup func(string) (string, bool)) (map[string]int, error) {
	b, names := hideEnvRefs(b)
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil // an empty file means all defaults
		}
		return nil, syntaxError(b, err)
	}
	var more yaml.Node
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		return nil, errors.New("config: the file must hold exactly one YAML document")
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	var errs []error
	expandEnv(root, "", names, lookup, &errs)
	checkKnown(root, reflect.TypeOf(out).Elem(), "", &errs)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if err := root.Decode(out); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, fmt.Errorf("config: %w", err)
		}
		for _, e := range te.Errors {
			errs = append(errs, typeError(root, e))
		}
		return nil, errors.Join(errs...)
	}
	lines := map[string]int{}
	recordLines(root, "", lines)
	return lines, nil
}

var yamlLine = regexp.MustCompile(`^yaml: (line [0-9]+: )?`)

// syntaxError reports a YAML syntax error at the line of the problem.
// yaml.v3 names the line where the enclosing block starts, counted from 0
// (a mis-indented key of a list that starts on line 2: "line 1"), not the
// problem's; the problem's line is the first at which a prefix of the
// document fails with the same error.
func syntaxError(b []byte, err error) error {
	lines := bytes.SplitAfter(b, []byte("\n"))
	for n := 1; n <= len(lines); n++ {
		var doc yaml.Node
		if perr := yaml.Unmarshal(bytes.Join(lines[:n], nil), &doc); perr != nil && perr.Error() == err.Error() {
			return fmt.Errorf("config: line %d: %s", n, yamlLine.ReplaceAllString(err.Error(), ""))
		}
	}
	return fmt.Errorf("config: %w", err)
}

var typeErrorLine = regexp.MustCompile("^line ([0-9]+): (.*)$")

// typeError turns one of yaml.v3's "line N: cannot unmarshal !!str `abc`
// into int" messages into "config: line N: key: cannot unmarshal ...",
// naming the key when exactly one value on that line fits the message.
func typeError(root *yaml.Node, msg string) error {
	m := typeErrorLine.FindStringSubmatch(msg)
	if m == nil {
		return errors.New("config: " + msg)
	}
	line, _ := strconv.Atoi(m[1])
	_, value, scalar := strings.Cut(m[2], "`")
	value, _, _ = strings.Cut(value, "`")
	var keys []string
	walkValues(root, "", func(path string, n *yaml.Node) {
		short := n.Value
		if len(short) > 10 { // as yaml.v3 shortens it
			short = short[:7] + "..."
		}
		if n.Line == line && (n.Kind == yaml.ScalarNode) == scalar && (!scalar || short == value) {
			keys = append(keys, path)
		}
	})
	if len(keys) != 1 {
		return fmt.Errorf("config: line %d: %s", line, m[2])
	}
	return fmt.Errorf("config: line %d: %s: %s", line, keys[0], m[2])
}

// walkValues calls f for every mapping value and sequence item under n.
func walkValues(n *yaml.Node, path string, f func(path string, n *yaml.Node)) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := join(path, n.Content[i].Value)
			f(p, n.Content[i+1])
			walkValues(n.Content[i+1], p, f)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			f(p, c)
			walkValues(c, p, f)
		}
	}
}

// recordLines stores the line of every key and sequence item under n.
func recordLines(n *yaml.Node, path string, lines map[string]int) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := join(path, n.Content[i].Value)
			lines[p] = n.Content[i].Line
			recordLines(n.Content[i+1], p, lines)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			lines[p] = c.Line
			recordLines(c, p, lines)
		}
	}
}

func expandEnv(n *yaml.Node, path string, names []string, lookup func(string) (string, bool), errs *[]error) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			expandEnv(n.Content[i+1], join(path, n.Content[i].Value), names, lookup, errs)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			expandEnv(c, fmt.Sprintf("%s[%d]", path, i), names, lookup, errs)
		}
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "__mogate_env_") {
			return
		}
		n.Value = envPlaceholder.ReplaceAllStringFunc(n.Value, func(ref string) string {
			i, _ := strconv.Atoi(envPlaceholder.FindStringSubmatch(ref)[1])
			if i >= len(names) {
				return ref
			}
			name := names[i]
			v, ok := lookup(name)
			switch {
			case !ok:
				*errs = append(*errs, fmt.Errorf("config: line %d: %s: ${%s} is not set in the environment", n.Line, path, name))
			case v == "":
				*errs = append(*errs, fmt.Errorf("config: line %d: %s: ${%s} is empty", n.Line, path, name))
			}
			return v
		})
		if n.Style == 0 {
			n.Tag = "" // let the expanded plain value resolve (int, bool, duration ...)
		}
	}
}

// checkKnown walks the node tree beside the Go type and reports mapping keys
// that have no yaml field.
func checkKnown(n *yaml.Node, t reflect.Type, path string, errs *[]error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch n.Kind {
	case yaml.MappingNode:
		if t.Kind() != reflect.Struct {
			return
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			ft, ok := fields[k.Value]
			if !ok {
				*errs = append(*errs, fmt.Errorf("config: line %d: unknown key %q%s", k.Line, join(path, k.Value), suggest(k.Value, fields)))
				continue
			}
			checkKnown(n.Content[i+1], ft, join(path, k.Value), errs)
		}
	case yaml.SequenceNode:
		if t.Kind() != reflect.Slice {
			return
		}
		for i, c := range n.Content {
			checkKnown(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i), errs)
		}
	}
}

func yamlFields(t reflect.Type) map[string]reflect.Type {
	fields := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "-" || name == "" {
			continue
		}
		fields[name] = f.Type
	}
	return fields
}

// suggest returns " (did you mean "x"?)" for the known key x closest to
// key: the same but for case, dashes or underscores; a few letters off
// (a typo, a swapped pair), fewer the shorter the key; or the one key that
// key is a prefix of, or that is a prefix of key. "" when none is close.
func suggest(key string, fields map[string]reflect.Type) string {
	norm := func(s string) string { return strings.NewReplacer("_", "", "-", "").Replace(strings.ToLower(s)) }
	k := norm(key)
	names := slices.Sorted(maps.Keys(fields))
	maxDist := 1 + len(k)/8 // 1 letter off below 8 letters, 2 below 16, ...
	best, bestDist := "", maxDist+1
	for _, name := range names {
		if d := editDistance(k, norm(name)); d < bestDist {
			best, bestDist = name, d
		}
	}
	if best == "" && len(k) >= 4 {
		var prefixed []string
		for _, name := range names {
			if n := norm(name); strings.HasPrefix(n, k) || strings.HasPrefix(k, n) {
				prefixed = append(prefixed, name)
			}
		}
		if len(prefixed) == 1 {
			best = prefixed[0]
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the optimal string alignment distance of a and b: the
// insertions, deletions, substitutions and swaps of adjacent letters that
// turn a into b.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// UnmarshalYAML records the line of an API key entry for later errors.
func (k *APIKey) UnmarshalYAML(n *yaml.Node) error {
	type plain APIKey
	if err := n.Decode((*plain)(k)); err != nil {
		return err
	}
	k.line = n.Line
	return nil
}

// UnmarshalYAML records the line of a number entry for later errors. An
// absent (or empty) weight is 1; `weight: 0` stays 0: it drains the number.
func (num *Number) UnmarshalYAML(n *yaml.Node) error {
	type plain Number
	num.Weight = 1
	if err := n.Decode((*plain)(num)); err != nil {
		return err
	}
	num.line = n.Line
	return nil
}
