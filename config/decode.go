package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

var (
	envRef         = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)
	envPlaceholder = regexp.MustCompile(`__mogate_env_([0-9]+)__`)
)

// hideEnvRefs swaps every ${NAME} for a placeholder that is a valid plain
// scalar anywhere, so that the DESIGN.md form `{auth_token: ${TOKEN}}` parses
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
// lookup (an unset variable is an error), and a key that out has no field
// for is an error naming the key and its line.
func decodeStrict(b []byte, out any, lookup func(string) (string, bool)) error {
	b, names := hideEnvRefs(b)
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // an empty file means all defaults
		}
		return fmt.Errorf("config: %w", err)
	}
	var more yaml.Node
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		return errors.New("config: the file must hold exactly one YAML document")
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	var errs []error
	expandEnv(root, "", names, lookup, &errs)
	checkKnown(root, reflect.TypeOf(out).Elem(), "", &errs)
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if err := root.Decode(out); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return nil
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
			if !ok {
				*errs = append(*errs, fmt.Errorf("config: line %d: %s: environment variable %s is not set", n.Line, path, name))
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

func suggest(key string, fields map[string]reflect.Type) string {
	for name := range fields {
		k := strings.ToLower(key)
		if strings.ReplaceAll(name, "_", "") == strings.ReplaceAll(k, "_", "") || strings.ReplaceAll(name, "_", "-") == k ||
			(len(k) >= 4 && (strings.HasPrefix(name, k) || strings.HasPrefix(k, name))) {
			return fmt.Sprintf(" (did you mean %q?)", name)
		}
	}
	return ""
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

// UnmarshalYAML records the line of a number entry for later errors.
func (num *Number) UnmarshalYAML(n *yaml.Node) error {
	type plain Number
	if err := n.Decode((*plain)(num)); err != nil {
		return err
	}
	num.line = n.Line
	return nil
}
