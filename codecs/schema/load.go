package schema

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// LoadProfileFile reads and parses one profile file. Errors name the path.
func LoadProfileFile(path string) (*Profile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, ProfileErrors{{File: path, Msg: err.Error()}}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxProfileSize+1))
	if err != nil {
		return nil, ProfileErrors{{File: path, Msg: err.Error()}}
	}
	return ParseProfile(path, data)
}

// LoadProfileDir loads every *.yaml and *.yml file of dir (not its
// subdirectories; names starting with "." are skipped), keyed by profile
// name. It returns the profiles that loaded together with an error joining
// the problems of the others (two files declaring one name is a problem of
// the second, in name order); the caller decides whether one bad file is fatal.
func LoadProfileDir(dir string) (map[string]*Profile, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || strings.HasPrefix(n, ".") {
			continue
		}
		if ext := strings.ToLower(filepath.Ext(n)); ext == ".yaml" || ext == ".yml" {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	if len(names) > maxDirFiles {
		return nil, fmt.Errorf("%s: too many profile files (%d; at most %d)", dir, len(names), maxDirFiles)
	}
	out := make(map[string]*Profile, len(names))
	from := make(map[string]string, len(names))
	var errs []error
	for _, n := range names {
		path := filepath.Join(dir, n)
		p, err := LoadProfileFile(path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if prev, dup := from[p.Name]; dup {
			errs = append(errs, ProfileErrors{{File: path, Msg: fmt.Sprintf("profile %q is already declared in %s", p.Name, prev)}})
			continue
		}
		out[p.Name], from[p.Name] = p, path
	}
	return out, errors.Join(errs...)
}

// ParseProfile parses a profile from YAML. filename is used in errors only.
// The error, if any, is ProfileErrors: every problem found (up to 10), each
// as "file:line: path: message".
func ParseProfile(filename string, data []byte) (*Profile, error) {
	l := &loader{file: filename}
	if len(data) > MaxProfileSize {
		l.errs = append(l.errs, &ProfileError{File: filename, Msg: fmt.Sprintf(
			"the file is too large (%d bytes; at most %d)", len(data), MaxProfileSize)})
		return nil, l.errs
	}
	root, err := decodeYAML(data)
	if err != nil {
		l.errs = append(l.errs, yamlError(filename, err))
		return nil, l.errs
	}
	p := l.profile(root)
	if len(l.errs) > 0 {
		return nil, l.errs
	}
	return p, nil
}

// decodeYAML parses exactly one YAML document.
func decodeYAML(data []byte) (root *yaml.Node, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("yaml: the YAML parser failed: %v", r)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if err == io.EOF {
			return nil, errors.New("the file is empty")
		}
		return nil, err
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err != io.EOF {
		if err == nil {
			return nil, fmt.Errorf("yaml: line %d: only one YAML document is allowed", extra.Line)
		}
		return nil, err
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, errors.New("the file is empty")
	}
	return doc.Content[0], nil
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func yamlError(file string, err error) *ProfileError {
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &ProfileError{File: file, Line: line, Msg: "YAML syntax: " + m[2]}
	}
	if strings.HasPrefix(msg, "yaml: ") {
		return &ProfileError{File: file, Msg: "YAML syntax: " + strings.TrimPrefix(msg, "yaml: ")}
	}
	return &ProfileError{File: file, Msg: msg}
}

type loader struct {
	file string
	errs ProfileErrors
}

func (l *loader) errorf(n *yaml.Node, path, format string, args ...any) {
	if len(l.errs) >= maxErrors {
		return
	}
	line := 0
	if n != nil {
		line = n.Line
	}
	l.errs = append(l.errs, &ProfileError{File: l.file, Line: line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 16; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe says what a node is, for "expected X, got Y".
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.ScalarNode:
		if isNull(n) {
			return "nothing"
		}
		v := n.Value
		if utf8.RuneCountInString(v) > maxShown {
			v = string([]rune(v)[:maxShown]) + "…"
		}
		return strconv.Quote(v)
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return "something else"
}

// pathKey is a key as shown in an error path: quoted unless it is a plain name.
func pathKey(key string) string {
	for _, r := range key {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return strconv.Quote(key)
		}
	}
	if key == "" {
		return `""`
	}
	return key
}

// entry is one key of a mapping.
type entry struct {
	key  string
	k, v *yaml.Node
}

// entries reads a mapping in order. With known != nil, other keys are
// errors (with a suggestion); keys whose value is null are left out when
// skipNull is set, so that "description:" reads as absent.
func (l *loader) entries(n *yaml.Node, path string, known []string, skipNull bool) ([]entry, bool) {
	n = deref(n)
	if n.Kind != yaml.MappingNode {
		l.errorf(n, path, "expected a mapping, got %s", describe(n))
		return nil, false
	}
	var out []entry
	seen := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), deref(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			l.errorf(k, path, "expected a name as key, got %s", describe(k))
			continue
		}
		key := k.Value
		if line, dup := seen[key]; dup {
			l.errorf(k, path, "duplicate key %q (first at line %d)", key, line)
			continue
		}
		seen[key] = k.Line
		if known != nil && !contains(known, key) {
			msg := fmt.Sprintf("unknown key %q", key)
			if s := Suggest(key, known); s != "" {
				msg += fmt.Sprintf("; did you mean %q?", s)
			} else {
				msg += "; expected one of " + strings.Join(known, ", ")
			}
			l.errorf(k, path, "%s", msg)
			continue
		}
		if skipNull && isNull(v) {
			continue
		}
		out = append(out, entry{key, k, v})
	}
	return out, true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func find(es []entry, key string) *entry {
	for i := range es {
		if es[i].key == key {
			return &es[i]
		}
	}
	return nil
}

// str reads a scalar as text of at most max bytes without control
// characters (newlines and tabs allowed when multiline).
func (l *loader) str(n *yaml.Node, path string, max int, multiline bool) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		l.errorf(n, path, "expected text, got %s", describe(n))
		return "", false
	}
	s := n.Value
	if len(s) > max {
		l.errorf(n, path, "too long (%d bytes; at most %d)", len(s), max)
		return "", false
	}
	if !utf8.ValidString(s) {
		l.errorf(n, path, "not valid UTF-8 text")
		return "", false
	}
	for _, r := range s {
		if isControl(r) && !(multiline && (r == '\n' || r == '\t')) {
			l.errorf(n, path, "must not contain control characters")
			return "", false
		}
	}
	return s, true
}

func (l *loader) num(n *yaml.Node, path string) (float64, bool) {
	if n.Kind == yaml.ScalarNode && scanNumber(n.Value) == len(n.Value) && n.Value != "" {
		if v, err := strconv.ParseFloat(n.Value, 64); err == nil && !math.IsInf(v, 0) {
			return v, true
		}
	}
	l.errorf(n, path, "expected a number, got %s", describe(n))
	return 0, false
}

func (l *loader) integer(n *yaml.Node, path string, lo, hi int) (int, bool) {
	if n.Kind == yaml.ScalarNode && isPlainInt(n.Value) {
		if v, err := strconv.Atoi(n.Value); err == nil {
			if v < lo || v > hi {
				l.errorf(n, path, "must be between %d and %d, got %d", lo, hi, v)
				return 0, false
			}
			return v, true
		}
	}
	l.errorf(n, path, "expected a whole number, got %s", describe(n))
	return 0, false
}

func (l *loader) boolean(n *yaml.Node, path string) (bool, bool) {
	if n.Kind == yaml.ScalarNode {
		if b, ok := ParseBool(n.Value); ok {
			return b, true
		}
	}
	l.errorf(n, path, "expected true or false, got %s", describe(n))
	return false, false
}

var (
	topKeys   = []string{"profile", "version", "description", "max_in_flight", "commands", "telemetry"}
	cmdKeys   = []string{"description", "args", "example", "timeout", "dangerous"}
	argKeys   = []string{"name", "type", "unit", "delta", "description", "min", "max", "default", "values", "required", "max_len"}
	fieldKeys = []string{"type", "unit", "format", "description", "below", "above"}
	argTypes  = []string{TypeInt, TypeFloat, TypeBool, TypeString, TypeEnum}
	fieldType = []string{TypeInt, TypeFloat, TypeBool, TypeString}
)

func (l *loader) profile(n *yaml.Node) *Profile {
	p := &Profile{}
	es, ok := l.entries(n, "", topKeys, true)
	if !ok {
		return nil
	}
	if e := find(es, "profile"); e == nil {
		l.errorf(n, "", `missing "profile" (the profile's name)`)
	} else if s, ok := l.str(e.v, "profile", 1<<10, false); ok {
		if !validProfileName(s) {
			l.errorf(e.v, "profile", "must be lower-case letters, digits, _ and -, at most %d, got %q", MaxNameLen, s)
		}
		p.Name = s
	}
	if e := find(es, "version"); e != nil {
		p.Version, _ = l.str(e.v, "version", MaxNameLen, false)
	}
	if e := find(es, "description"); e != nil {
		p.Description, _ = l.str(e.v, "description", MaxTextLen, true)
	}
	if e := find(es, "max_in_flight"); e != nil {
		p.MaxInFlight, _ = l.integer(e.v, "max_in_flight", 0, MaxInFlightCap)
	}
	if e := find(es, "commands"); e != nil {
		l.commands(p, e.v)
	}
	if e := find(es, "telemetry"); e != nil {
		l.telemetry(p, e.v)
	}
	return p
}

func (l *loader) commands(p *Profile, n *yaml.Node) {
	n = deref(n)
	if n.Kind == yaml.MappingNode && len(n.Content)/2 > MaxCommands {
		l.errorf(n, "commands", "too many commands (%d; at most %d)", len(n.Content)/2, MaxCommands)
		return
	}
	es, ok := l.entries(n, "commands", nil, false)
	if !ok {
		return
	}
	exampleLines := map[*Command]*yaml.Node{}
	keyLines := map[*Command]*yaml.Node{}
	for _, e := range es {
		path := "commands." + pathKey(e.key)
		if !validIdent(e.key) {
			l.errorf(e.k, path, "a command name must be lower-case letters, digits and _, starting with a letter, at most %d", MaxNameLen)
			continue
		}
		if isReserved(e.key) {
			l.errorf(e.k, path, "%q is reserved for the bridge (reserved: %s)", e.key, strings.Join(ReservedVerbs, ", "))
			continue
		}
		c := &Command{Verb: e.key}
		p.Commands = append(p.Commands, c)
		keyLines[c] = e.k
		if isNull(e.v) {
			continue
		}
		ces, ok := l.entries(e.v, path, cmdKeys, true)
		if !ok {
			continue
		}
		if x := find(ces, "description"); x != nil {
			c.Description, _ = l.str(x.v, path+".description", MaxTextLen, true)
		}
		if x := find(ces, "args"); x != nil {
			l.args(c, x.v, path+".args")
		}
		if x := find(ces, "example"); x != nil {
			if s, ok := l.str(x.v, path+".example", MaxTextLen, false); ok {
				c.Example = s
				exampleLines[c] = x.v
			}
		}
		if x := find(ces, "timeout"); x != nil {
			c.Timeout = l.duration(x.v, path+".timeout")
		}
		if x := find(ces, "dangerous"); x != nil {
			c.Dangerous, _ = l.boolean(x.v, path+".dangerous")
		}
	}
	if len(l.errs) > 0 {
		return
	}
	// Every example must parse as its own command.
	for _, c := range p.Commands {
		ex := c.ExampleText()
		inv, err := p.Parse(ex, ParseOptions{})
		if err == nil && inv.Cmd != c {
			err = fmt.Errorf("it runs %q, not %q", inv.Verb, c.Verb)
		}
		if err == nil {
			continue
		}
		if n := exampleLines[c]; n != nil {
			l.errorf(n, "commands."+c.Verb+".example", "%q does not parse: %v", ex, err)
		} else {
			l.errorf(keyLines[c], "commands."+c.Verb, "cannot generate an example (%v); declare one", err)
		}
	}
}

func (l *loader) duration(n *yaml.Node, path string) time.Duration {
	if n.Kind == yaml.ScalarNode {
		if d, err := time.ParseDuration(n.Value); err == nil {
			if d <= 0 || d > MaxTimeout {
				l.errorf(n, path, "must be more than 0 and at most %v, got %v", MaxTimeout, d)
				return 0
			}
			return d
		}
	}
	l.errorf(n, path, "expected a duration like 30s or 500ms, got %s", describe(n))
	return 0
}

func (l *loader) args(c *Command, n *yaml.Node, path string) {
	n = deref(n)
	if n.Kind != yaml.SequenceNode {
		l.errorf(n, path, "expected a list of arguments, got %s", describe(n))
		return
	}
	if len(n.Content) > MaxArgs {
		l.errorf(n, path, "too many arguments (%d; at most %d)", len(n.Content), MaxArgs)
		return
	}
	var optional *Arg
	for i, item := range n.Content {
		ipath := fmt.Sprintf("%s[%d]", path, i)
		a, node := l.arg(deref(item), ipath)
		if a == nil {
			continue
		}
		if a.Name != "" && c.Arg(a.Name) != nil {
			l.errorf(node, ipath+".name", "duplicate argument %q", a.Name)
			continue
		}
		if a.Required && optional != nil {
			l.errorf(node, ipath, "required arguments must come before optional ones (%s is optional)", optional.Name)
		}
		if !a.Required && optional == nil {
			optional = a
		}
		c.Args = append(c.Args, a)
	}
}

// arg reads one argument; it returns the node of its name for errors.
func (l *loader) arg(n *yaml.Node, path string) (*Arg, *yaml.Node) {
	es, ok := l.entries(n, path, argKeys, true)
	if !ok {
		return nil, nil
	}
	a := &Arg{}
	nameNode := n
	if e := find(es, "name"); e == nil {
		l.errorf(n, path, `missing "name"`)
	} else if s, ok := l.str(e.v, path+".name", 1<<10, false); ok {
		nameNode = e.v
		if !validIdent(s) {
			l.errorf(e.v, path+".name", "an argument name must be lower-case letters, digits and _, starting with a letter, at most %d, got %q", MaxNameLen, s)
		}
		a.Name = s
	}
	e := find(es, "type")
	if e == nil {
		l.errorf(n, path, `missing "type" (one of %s)`, strings.Join(argTypes, ", "))
		return nil, nil
	}
	if !l.typeName(e.v, path+".type", argTypes, &a.Type) {
		return nil, nil
	}
	numeric := a.numeric()
	only := func(key, types string) *entry {
		x := find(es, key)
		if x != nil && !strings.Contains(types, a.Type) {
			l.errorf(x.k, path+"."+key, "only %s arguments take %q", types, key)
			return nil
		}
		return x
	}
	if x := find(es, "description"); x != nil {
		a.Description, _ = l.str(x.v, path+".description", MaxTextLen, true)
	}
	if x := only("unit", "int and float"); x != nil {
		a.Unit = l.unit(x.v, path+".unit")
	}
	if x := only("delta", "int and float"); x != nil {
		a.Delta, _ = l.boolean(x.v, path+".delta")
	}
	for _, key := range []string{"min", "max"} {
		x := only(key, "int and float")
		if x == nil {
			continue
		}
		v, ok := l.num(x.v, path+"."+key)
		if !ok {
			continue
		}
		if a.Type == TypeInt && (v != math.Trunc(v) || math.Abs(v) >= 1<<63) {
			l.errorf(x.v, path+"."+key, "must be a whole number for an int argument, got %s", fmtNum(v))
			continue
		}
		if key == "min" {
			a.Min = &v
		} else {
			a.Max = &v
		}
	}
	if numeric && a.Min != nil && a.Max != nil && *a.Min > *a.Max {
		l.errorf(find(es, "max").v, path+".max", "max (%s) is less than min (%s)", fmtNum(*a.Max), fmtNum(*a.Min))
	}
	if x := only("values", "enum"); x != nil {
		a.Values = l.enumValues(x.v, path+".values")
	} else if a.Type == TypeEnum {
		l.errorf(n, path, `an enum argument needs "values"`)
	}
	if x := only("max_len", "string"); x != nil {
		a.MaxLen, _ = l.integer(x.v, path+".max_len", 1, MaxStringLen)
	}
	if a.Type == TypeString && a.MaxLen == 0 {
		a.MaxLen = DefaultMaxLen
	}
	if x := find(es, "required"); x != nil {
		a.Required, _ = l.boolean(x.v, path+".required")
	}
	if x := find(es, "default"); x != nil {
		switch {
		case a.Required:
			l.errorf(x.k, path+".default", "a required argument cannot have a default")
		case x.v.Kind != yaml.ScalarNode:
			l.errorf(x.v, path+".default", "expected a value, got %s", describe(x.v))
		case a.Type != TypeEnum || len(a.Values) > 0:
			v, problem := a.parseText(x.v.Value)
			if problem != "" {
				l.errorf(x.v, path+".default", "the default %s", problem)
			} else {
				a.Default = v
			}
		}
	}
	return a, nameNode
}

func (l *loader) typeName(n *yaml.Node, path string, allowed []string, out *string) bool {
	s, ok := l.str(n, path, 1<<10, false)
	if !ok {
		return false
	}
	if contains(allowed, s) {
		*out = s
		return true
	}
	msg := fmt.Sprintf("unknown type %q", s)
	if sug := Suggest(s, allowed); sug != "" {
		msg += fmt.Sprintf("; did you mean %q?", sug)
	} else {
		msg += "; expected one of " + strings.Join(allowed, ", ")
	}
	l.errorf(n, path, "%s", msg)
	return false
}

// unit reads a unit symbol. Units of the table convert; any other symbol
// is accepted as is (values may then carry exactly that symbol).
func (l *loader) unit(n *yaml.Node, path string) string {
	s, ok := l.str(n, path, MaxUnitLen, false)
	if !ok {
		return ""
	}
	if s == "" || !validToken(s) || scanNumber("1"+s) != 1 {
		l.errorf(n, path, "a unit must be one word that cannot be read as part of a number, got %q", s)
		return ""
	}
	return s
}

// validToken reports whether s reads back as one chat word: no spaces,
// control characters, quotes, '=' or backslash.
func validToken(s string) bool {
	for _, r := range s {
		if isSpace(r) || isControl(r) || isQuote(r) || r == '”' || r == '’' || r == '=' || r == '\\' {
			return false
		}
	}
	return true
}

func (l *loader) enumValues(n *yaml.Node, path string) []string {
	n = deref(n)
	if n.Kind != yaml.SequenceNode {
		l.errorf(n, path, "expected a list of values, got %s", describe(n))
		return nil
	}
	if len(n.Content) == 0 || len(n.Content) > MaxEnumValues {
		l.errorf(n, path, "expected 1 to %d values, got %d", MaxEnumValues, len(n.Content))
		return nil
	}
	var out []string
	for i, item := range n.Content {
		item = deref(item)
		ipath := fmt.Sprintf("%s[%d]", path, i)
		s, ok := l.str(item, ipath, MaxNameLen, false)
		if !ok {
			continue
		}
		if s == "" || !validToken(s) {
			l.errorf(item, ipath, "an enum value must be one word without quotes, '=' or '\\', got %q", s)
			continue
		}
		dup := false
		for _, v := range out {
			if strings.EqualFold(v, s) {
				l.errorf(item, ipath, "duplicate value %q", s)
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, s)
		}
	}
	return out
}

func (l *loader) telemetry(p *Profile, n *yaml.Node) {
	n = deref(n)
	if n.Kind == yaml.MappingNode && len(n.Content)/2 > MaxFields {
		l.errorf(n, "telemetry", "too many fields (%d; at most %d)", len(n.Content)/2, MaxFields)
		return
	}
	es, ok := l.entries(n, "telemetry", nil, false)
	if !ok {
		return
	}
	for _, e := range es {
		path := "telemetry." + pathKey(e.key)
		if !validIdent(e.key) {
			l.errorf(e.k, path, "a field name must be lower-case letters, digits and _, starting with a letter, at most %d", MaxNameLen)
			continue
		}
		if f := l.field(e.key, e.v, path); f != nil {
			p.Telemetry = append(p.Telemetry, f)
		}
	}
}

func (l *loader) field(name string, n *yaml.Node, path string) *Field {
	es, ok := l.entries(n, path, fieldKeys, true)
	if !ok {
		return nil
	}
	f := &Field{Name: name}
	e := find(es, "type")
	if e == nil {
		l.errorf(n, path, `missing "type" (one of %s)`, strings.Join(fieldType, ", "))
		return nil
	}
	if !l.typeName(e.v, path+".type", fieldType, &f.Type) {
		return nil
	}
	if x := find(es, "description"); x != nil {
		f.Description, _ = l.str(x.v, path+".description", MaxTextLen, true)
	}
	if x := find(es, "unit"); x != nil {
		f.Unit = l.unit(x.v, path+".unit")
	}
	if x := find(es, "format"); x != nil {
		if s, ok := l.str(x.v, path+".format", MaxFormatLen, false); ok {
			v := formatVerb(s)
			if v == 0 || !strings.ContainsRune(formatVerbsFor(f.Type), rune(v)) || strings.ContainsRune(s, '*') || strings.Contains(s, "%[") {
				l.errorf(x.v, path+".format", "expected one fmt verb for a %s value (%%%s), like \"%%.1f\", got %q",
					f.Type, strings.Join(strings.Split(formatVerbsFor(f.Type), ""), " %"), s)
			} else {
				f.Format = s
			}
		}
	}
	for _, key := range []string{"below", "above"} {
		x := find(es, key)
		if x == nil {
			continue
		}
		if !f.numeric() {
			l.errorf(x.k, path+"."+key, "only int and float fields take %q", key)
			continue
		}
		if v, ok := l.num(x.v, path+"."+key); ok {
			if key == "below" {
				f.Below = &v
			} else {
				f.Above = &v
			}
		}
	}
	return f
}
