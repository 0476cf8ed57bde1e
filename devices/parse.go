package devices

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/mesibo-iot/mesibo-iot/codecs/schema"
	"github.com/mesibo-iot/mesibo-iot/transports"
)

// Load reads and checks the devices file at path and the profile files it
// names (with schema.LoadProfileFile). Errors are *LoadError values, or
// several joined with errors.Join, plus the profile loader's own errors.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &LoadError{File: path, Msg: "cannot open the devices file: " + err.Error(), Err: err}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, &LoadError{File: path, Msg: "cannot read the devices file: " + err.Error(), Err: err}
	}
	return Parse(path, data, nil)
}

// Parse checks data, the contents of the devices file filename. Profile
// paths are resolved relative to filepath.Dir(filename) and loaded with
// loadProfile (schema.LoadProfileFile when nil); glob patterns are expanded
// on the file system.
func Parse(filename string, data []byte, loadProfile func(path string) (*schema.Profile, error)) (*Config, error) {
	if loadProfile == nil {
		loadProfile = schema.LoadProfileFile
	}
	return parse(filename, data, loadProfile, filepath.Glob, isDir)
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func isDir(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.IsDir()
}

// parse is Parse with the file system access replaceable (for fuzzing).
func parse(filename string, data []byte, loadProfile func(string) (*schema.Profile, error),
	glob func(string) ([]string, error), isDir func(string) bool) (*Config, error) {
	p := &parser{
		glob:     glob,
		isDir:    isDir,
		exists:   func(path string) bool { return fileExists(path) || isDir(path) },
		problems: problems{file: filename},
		dir:      filepath.Dir(filename),
		load:     loadProfile,
		intern:   newInterner(),
		failed:   map[string]bool{},
		// Each mapping pair visited costs one; merges (<<) of aliases can
		// multiply pairs, so a budget bounds the work a small file can
		// cause. Without merges a file has fewer pairs than bytes/4.
		mergeBudget: 2*len(data) + 100_000,
	}
	if len(data) > MaxFileSize {
		p.at(0, fmt.Sprintf("the file is larger than %d bytes (4 MiB); split the devices over fewer, shorter entries", MaxFileSize))
		return nil, p.err()
	}
	root := p.decode(data)
	if root == nil {
		return nil, p.err()
	}
	cfg := p.config(root)
	if err := p.err(); err != nil {
		return nil, err
	}
	return cfg, nil
}

type parser struct {
	problems
	dir    string
	load   func(string) (*schema.Profile, error)
	glob   func(string) ([]string, error)
	isDir  func(string) bool
	exists func(string) bool
	intern *interner

	profiles map[string]*schema.Profile
	// failed holds the base names (without extension) of profile files that
	// did not load: a device naming such a profile gets no second error.
	failed      map[string]bool
	anyFailed   bool
	mergeBudget int

	defTTL   time.Duration
	defQueue int
}

// decode parses the YAML document and returns its top node, or nil after
// recording why not.
func (p *parser) decode(data []byte) (root *yaml.Node) {
	defer func() {
		if r := recover(); r != nil { // the YAML parser must not take the module down
			root = nil
			p.at(0, fmt.Sprintf("invalid YAML: the parser failed (%v); expected a YAML mapping", r))
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			p.at(0, "the file is empty; expected a mapping with version: 1 and devices:")
		} else {
			p.yamlError(err)
		}
		return nil
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		p.at(extra.Line, "a second YAML document starts here; a devices file holds one document (remove the \"---\")")
		return nil
	case !errors.Is(err, io.EOF):
		p.yamlError(err)
		return nil
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		p.at(0, "the file is empty; expected a mapping with version: 1 and devices:")
		return nil
	}
	return doc.Content[0]
}

func (p *parser) yamlError(err error) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if i := strings.IndexByte(rest, ':'); i > 0 {
			if n, err := strconv.Atoi(rest[:i]); err == nil {
				line, msg = n, strings.TrimSpace(rest[i+1:])
			}
		}
	}
	p.at(line, "invalid YAML: "+msg+"; expected a YAML mapping (check indentation and quoting)")
}

// ---- generic node helpers ----

// deref follows an alias to the node it names.
func deref(n *yaml.Node) *yaml.Node {
	if n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

// clip shortens user text quoted in a message.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing"
		}
		return strconv.Quote(clip(n.Value))
	case yaml.AliasNode:
		return "an alias"
	}
	return "a document"
}

// maxKeys is the most keys any mapping of the format has.
const maxKeys = 16

// fields holds a mapping's values by the index of their key in a key list.
type fields struct {
	val     [maxKeys]*yaml.Node
	keyLine [maxKeys]int
	unknown []*yaml.Node // key nodes not in the list
}

func (f *fields) has(i int) bool { return f.val[i] != nil }

// mapping reads the pairs of mapping node n (already dereferenced) into f.
// Keys listed in known go to f.val; others to f.unknown. "<<" merges the
// pairs of the aliased mapping(s), explicit keys winning.
func (p *parser) mapping(n *yaml.Node, known []string, f *fields) {
	p.mapping1(n, known, f, 0, false)
}

func (p *parser) mapping1(n *yaml.Node, known []string, f *fields, depth int, merged bool) {
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), n.Content[i+1]
		if p.mergeBudget--; p.mergeBudget < 0 {
			if p.mergeBudget == -1 {
				p.at(n.Line, "too many merged (<<) entries; expected a file without deeply nested merges")
			}
			return
		}
		if k.Kind != yaml.ScalarNode {
			p.at(k.Line, "a key here is "+kindName(k)+"; expected a plain word such as address:")
			continue
		}
		if k.Value == "<<" && k.Tag == "!!merge" {
			merges = append(merges, v)
			continue
		}
		idx := slices.Index(known, k.Value)
		if idx < 0 {
			f.unknown = append(f.unknown, k) // also from merges: a typo in a template is still a typo
			continue
		}
		if f.val[idx] != nil {
			if !merged {
				p.at(k.Line, fmt.Sprintf("key %q given twice (also on line %d); give it once", k.Value, f.keyLine[idx]))
			}
			continue
		}
		f.val[idx], f.keyLine[idx] = deref(v), k.Line
	}
	for _, m := range merges {
		m = deref(m)
		var srcs []*yaml.Node
		switch m.Kind {
		case yaml.MappingNode:
			srcs = []*yaml.Node{m}
		case yaml.SequenceNode:
			srcs = m.Content
		}
		if srcs == nil {
			p.at(m.Line, "a merge (<<) takes an alias of a mapping, e.g. <<: *defaults; expected *name or [*a, *b]")
		}
		for _, s := range srcs {
			s = deref(s)
			if s.Kind != yaml.MappingNode || depth >= 8 {
				p.at(m.Line, "a merge (<<) takes an alias of a mapping, e.g. <<: *defaults; expected *name or [*a, *b]")
				break
			}
			p.mapping1(s, known, f, depth+1, true)
		}
	}
}

// unknownKeys reports f.unknown with a suggestion.
func (p *parser) unknownKeys(f *fields, where string, known []string) {
	for _, k := range f.unknown {
		msg := fmt.Sprintf("unknown key %q %s", clip(k.Value), where)
		if s := suggest(k.Value, known); s != "" {
			msg += fmt.Sprintf("; did you mean %q?", s)
		} else {
			msg += "; expected one of: " + strings.Join(known, ", ")
		}
		p.at(k.Line, msg)
	}
}

// scalar returns n's text, or reports that n is not a single value.
func (p *parser) scalar(n *yaml.Node, key, where string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		p.at(n.Line, fmt.Sprintf("%s %s is %s; expected a single value", key, where, kindName(n)))
		return "", false
	}
	if n.Tag == "!!null" {
		return "", true
	}
	return n.Value, true
}

// list returns the scalar entries of a list (a single scalar counts as a
// one-entry list). Lines of the entries are in lines.
func (p *parser) list(n *yaml.Node, key, where string) (vals []string, lines []int) {
	switch {
	case isNull(n):
		return nil, nil
	case n.Kind == yaml.ScalarNode:
		return []string{n.Value}, []int{n.Line}
	case n.Kind != yaml.SequenceNode:
		p.at(n.Line, fmt.Sprintf("%s %s is %s; expected a list such as [a, b]", key, where, kindName(n)))
		return nil, nil
	}
	vals = make([]string, 0, len(n.Content))
	lines = make([]int, 0, len(n.Content))
	for _, e := range n.Content {
		e = deref(e)
		if e.Kind != yaml.ScalarNode || e.Tag == "!!null" {
			p.at(e.Line, fmt.Sprintf("an entry of %s %s is %s; expected a single value", key, where, kindName(e)))
			continue
		}
		vals = append(vals, e.Value)
		lines = append(lines, e.Line)
	}
	return vals, lines
}

func (p *parser) intIn(n *yaml.Node, key, where string, lo, hi int) (int, bool) {
	s, ok := p.scalar(n, key, where)
	if !ok {
		return 0, false
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < lo || v > hi || n.Tag == "!!null" {
		p.at(n.Line, fmt.Sprintf("%s %s is %s; expected a whole number from %d to %d", key, where, kindName(n), lo, hi))
		return 0, false
	}
	return v, true
}

func (p *parser) duration(n *yaml.Node, key, where string) (time.Duration, bool) {
	s, ok := p.scalar(n, key, where)
	if !ok {
		return 0, false
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 || d > MaxCommandTTL || n.Tag == "!!null" {
		p.at(n.Line, fmt.Sprintf("%s %s is %s; expected a positive duration up to 168h (7 days), e.g. 30s, 10m or 2h", key, where, kindName(n)))
		return 0, false
	}
	return d, true
}

func (p *parser) boolean(n *yaml.Node, key, where string) (bool, bool) {
	s, ok := p.scalar(n, key, where)
	if ok {
		switch strings.ToLower(s) {
		case "true":
			return true, true
		case "false":
			return false, true
		}
	}
	if ok {
		p.at(n.Line, fmt.Sprintf("%s %s is %s; expected true or false", key, where, kindName(n)))
	}
	return false, false
}

// ---- character sets ----

// ValidAddress reports whether s is a valid mesibo address for this file:
// 1..64 of letters, digits, '_', '.', '@', '-'.
func ValidAddress(s string) bool { return validChars(s, "_.@-") }

// ValidID reports whether s is a valid device id: 1..64 of letters, digits,
// '_', '.', '-' (never MQTT's '/', '+', '#' or '$').
func ValidID(s string) bool { return validChars(s, "_.-") }

func validChars(s, extra string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte(extra, c) >= 0:
		default:
			return false
		}
	}
	return true
}

const (
	addressRule = "1..64 of letters, digits, '_', '.', '@', '-'"
	idRule      = "1..64 of letters, digits, '_', '.', '-' (no '/', '+', '#', '$' or spaces)"
)

func validText(s string, max int) bool {
	if s == "" || len(s) > max || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// ---- the file ----

var topKeys = []string{"version", "profiles", "defaults", "devices", "groups", "subscriptions"}

const (
	topVersion = iota
	topProfiles
	topDefaults
	topDevices
	topGroups
	topSubscriptions
)

func (p *parser) config(root *yaml.Node) *Config {
	cfg := &Config{
		File:      p.file,
		ByAddress: map[string]*Device{},
		ByID:      map[string]*Device{},
		GroupByID: map[uint64]*Group{},
	}
	root = deref(root)
	if root.Kind != yaml.MappingNode {
		p.at(root.Line, "the file holds "+kindName(root)+"; expected a mapping with version: 1, profiles:, devices:, groups: and subscriptions:")
		cfg.Profiles = map[string]*schema.Profile{}
		return cfg
	}
	var f fields
	p.mapping(root, topKeys, &f)
	// Top-level keys starting with "x-" are free for holding YAML anchors.
	f.unknown = slices.DeleteFunc(f.unknown, func(k *yaml.Node) bool { return strings.HasPrefix(k.Value, "x-") })
	p.unknownKeys(&f, "at the top level", topKeys)

	if !f.has(topVersion) {
		p.at(root.Line, "missing version; add version: 1 at the top")
	} else if s, ok := p.scalar(f.val[topVersion], "version", "at the top level"); ok && s != "1" {
		p.at(f.val[topVersion].Line, fmt.Sprintf("unsupported version %q; expected version: 1", clip(s)))
	}
	p.loadProfiles(f.val[topProfiles])
	cfg.Profiles = p.profiles
	if f.has(topDefaults) {
		p.defaults(f.val[topDefaults])
	}
	if !f.has(topDevices) {
		p.at(root.Line, "missing devices; add devices: with one entry per device (address, id, profile, transport)")
	} else {
		p.devices(f.val[topDevices], cfg)
	}
	if f.has(topGroups) {
		p.groups(f.val[topGroups], cfg)
	}
	if f.has(topSubscriptions) {
		p.subscriptions(f.val[topSubscriptions], cfg)
	}
	return cfg
}

// ---- profiles ----

func (p *parser) loadProfiles(n *yaml.Node) {
	p.profiles = map[string]*schema.Profile{}
	type pattern struct {
		pat  string
		line int
	}
	var pats []pattern
	if n == nil {
		// No profiles: key: use profiles/*.yaml next to the file, if any.
		if p.isDir(filepath.Join(p.dir, "profiles")) {
			pats = append(pats, pattern{"profiles/*.yaml", 0})
		}
	} else {
		vals, lines := p.list(n, "profiles", "at the top level")
		for i, v := range vals {
			pats = append(pats, pattern{v, lines[i]})
		}
	}
	seen := map[string]bool{}
	from := map[string]string{} // profile name -> file
	files := 0
	for _, pt := range pats {
		if pt.pat == "" || strings.IndexByte(pt.pat, 0) >= 0 {
			p.at(pt.line, "an entry of profiles is empty; expected a profile file path or glob such as profiles/*.yaml")
			continue
		}
		path := pt.pat
		if !filepath.IsAbs(path) {
			path = filepath.Join(p.dir, path)
		}
		matches := []string{filepath.Clean(path)}
		if strings.ContainsAny(pt.pat, "*?[") {
			var err error
			matches, err = p.glob(path)
			if err != nil {
				p.at(pt.line, fmt.Sprintf("profiles pattern %q is malformed (%v); expected a path or glob such as profiles/*.yaml", clip(pt.pat), err))
				continue
			}
			if len(matches) == 0 {
				p.at(pt.line, fmt.Sprintf("profiles pattern %q matches no files (looked for %s); expected at least one profile file", clip(pt.pat), path))
				continue
			}
		}
		for _, m := range matches {
			if seen[m] {
				continue
			}
			seen[m] = true
			if files++; files > MaxProfileFiles {
				p.at(pt.line, fmt.Sprintf("more than %d profile files; expected fewer", MaxProfileFiles))
				return
			}
			prof, err := p.load(m)
			if err != nil {
				base := strings.TrimSuffix(filepath.Base(m), filepath.Ext(m))
				p.failed[base] = true
				p.anyFailed = true
				if errors.Is(err, fs.ErrNotExist) || !p.exists(m) {
					p.at(pt.line, fmt.Sprintf("profile file %q not found (looked for %s); expected a path relative to this file's directory", clip(pt.pat), m))
				} else {
					p.add(err)
				}
				continue
			}
			if prof == nil || prof.Name == "" {
				p.at(pt.line, fmt.Sprintf("profile file %s has no profile name; expected a profile with a name", m))
				continue
			}
			if other, dup := from[prof.Name]; dup {
				p.at(pt.line, fmt.Sprintf("profile %q is defined by both %s and %s; expected each profile name once", prof.Name, other, m))
				continue
			}
			from[prof.Name] = m
			p.profiles[prof.Name] = prof
		}
	}
}

func (p *parser) loadedProfiles() string {
	if len(p.profiles) == 0 {
		return "(none)"
	}
	names := make([]string, 0, len(p.profiles))
	for n := range p.profiles {
		names = append(names, n)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// ---- defaults ----

var defaultKeys = []string{"command_ttl", "queue_size"}

func (p *parser) defaults(n *yaml.Node) {
	const where = "in defaults"
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		p.at(n.Line, "defaults is "+kindName(n)+"; expected a mapping with command_ttl and/or queue_size")
		return
	}
	var f fields
	p.mapping(n, defaultKeys, &f)
	p.unknownKeys(&f, where, defaultKeys)
	if f.has(0) {
		p.defTTL, _ = p.duration(f.val[0], "command_ttl", where)
	}
	if f.has(1) {
		p.defQueue, _ = p.intIn(f.val[1], "queue_size", where, MinQueueSize, MaxQueueSize)
	}
}

// ---- devices ----

var deviceKeys = []string{"address", "id", "name", "profile", "transport", "owners", "operators", "viewers",
	"max_in_flight", "command_ttl", "queue_size", "serial"}

const (
	dAddress = iota
	dID
	dName
	dProfile
	dTransport
	dOwners
	dOperators
	dViewers
	dMaxInFlight
	dCommandTTL
	dQueueSize
	dSerial
)

var transportKinds = []string{TransportMQTT, TransportSerial, TransportMemory}

func (p *parser) devices(n *yaml.Node, cfg *Config) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		p.at(n.Line, "devices is "+kindName(n)+"; expected a list of devices, each starting with \"- address:\"")
		return
	}
	if len(n.Content) > MaxDevices {
		p.at(n.Line, fmt.Sprintf("%d devices; expected at most %d in one file", len(n.Content), MaxDevices))
		return
	}
	cfg.Devices = make([]*Device, 0, len(n.Content))
	cfg.ByAddress = make(map[string]*Device, len(n.Content))
	cfg.ByID = make(map[string]*Device, len(n.Content))
	ports := map[string]*Device{}
	for i, item := range n.Content {
		if p.full() && p.dropped > 1000 {
			return // hopeless file: stop counting
		}
		if d := p.device(i+1, item, cfg, ports); d != nil {
			cfg.Devices = append(cfg.Devices, d)
		}
	}
}

func (p *parser) device(num int, item *yaml.Node, cfg *Config, ports map[string]*Device) *Device {
	n := deref(item)
	if n.Kind != yaml.MappingNode {
		p.at(n.Line, fmt.Sprintf("device #%d is %s; expected a mapping with address, id, profile and transport", num, kindName(n)))
		return nil
	}
	var f fields
	p.mapping(n, deviceKeys, &f)
	d := &Device{Line: item.Line}
	where := fmt.Sprintf("in device #%d", num)

	// address first: it names the device in the other messages.
	if !f.has(dAddress) {
		p.at(n.Line, fmt.Sprintf("device #%d has no address; add address: <the mesibo address people chat with> (%s)", num, addressRule))
	} else if s, good := p.scalar(f.val[dAddress], "address", where); good {
		switch {
		case !ValidAddress(s):
			p.at(f.val[dAddress].Line, fmt.Sprintf("invalid address %q %s; expected %s", clip(s), where, addressRule))
		case cfg.ByAddress[s] != nil:
			p.at(f.val[dAddress].Line, fmt.Sprintf("duplicate address %q (first used on line %d); expected each device to have its own address", s, cfg.ByAddress[s].Line))
			where = "in device " + s
		default:
			d.Address = s
			where = "in device " + s
		}
	}
	p.unknownKeys(&f, where, deviceKeys)

	if !f.has(dID) {
		p.at(n.Line, fmt.Sprintf("missing id %s; add id: <the device's id on the wire> (%s)", where, idRule))
	} else if s, good := p.scalar(f.val[dID], "id", where); good {
		switch {
		case !ValidID(s):
			p.at(f.val[dID].Line, fmt.Sprintf("invalid id %q %s; expected %s", clip(s), where, idRule))
		case cfg.ByID[s] != nil:
			p.at(f.val[dID].Line, fmt.Sprintf("duplicate id %q %s (first used on line %d by %s); expected each device to have its own id", s, where, cfg.ByID[s].Line, cfg.ByID[s].Address))
		default:
			d.ID = s
		}
	}

	if f.has(dName) {
		if s, good := p.scalar(f.val[dName], "name", where); good && s != "" {
			if !validText(s, maxNameLen) {
				p.at(f.val[dName].Line, fmt.Sprintf("invalid name %s; expected up to %d bytes of text without control characters", where, maxNameLen))
			} else {
				d.Name = s
			}
		}
	}

	if !f.has(dProfile) {
		p.at(n.Line, fmt.Sprintf("missing profile %s; add profile: <name of a loaded profile> (loaded: %s)", where, p.loadedProfiles()))
	} else if s, good := p.scalar(f.val[dProfile], "profile", where); good {
		d.Profile = p.profiles[s]
		if d.Profile == nil {
			if !p.failed[s] {
				msg := fmt.Sprintf("profile %q %s is not loaded; expected one of the loaded profiles: %s", clip(s), where, p.loadedProfiles())
				if sg := suggest(s, mapKeys(p.profiles)); sg != "" {
					msg += fmt.Sprintf(" (did you mean %q?)", sg)
				} else if p.anyFailed {
					msg += " (some profile files failed to load, see above)"
				}
				p.at(f.val[dProfile].Line, msg)
			}
		}
	}

	if !f.has(dTransport) {
		p.at(n.Line, fmt.Sprintf("missing transport %s; add transport: mqtt, serial or memory", where))
	} else if s, good := p.scalar(f.val[dTransport], "transport", where); good {
		if i := slices.Index(transportKinds, s); i >= 0 {
			d.Transport = transportKinds[i]
		} else {
			msg := fmt.Sprintf("unknown transport %q %s; expected mqtt, serial or memory", clip(s), where)
			if sg := suggest(s, transportKinds); sg != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", sg)
			}
			p.at(f.val[dTransport].Line, msg)
		}
	}

	switch {
	case d.Transport == TransportSerial && !f.has(dSerial):
		p.at(n.Line, fmt.Sprintf("missing serial %s, which uses transport serial; add serial: with path: or usb:", where))
	case f.has(dSerial) && d.Transport != TransportSerial:
		if d.Transport != "" {
			p.at(f.keyLine[dSerial], fmt.Sprintf("serial %s is only for transport serial, but the transport is %s; remove serial: or set transport: serial", where, d.Transport))
		}
	case f.has(dSerial):
		d.Serial = p.serial(f.val[dSerial], d, where, ports)
	}

	owners := p.users(&f, dOwners, "owners", where)
	operators := p.users(&f, dOperators, "operators", where)
	viewers := p.users(&f, dViewers, "viewers", where)
	d.access = p.intern.get(owners, operators, viewers)

	if d.Profile != nil {
		d.MaxInFlight = d.Profile.MaxInFlight
	}
	if f.has(dMaxInFlight) {
		d.MaxInFlight, _ = p.intIn(f.val[dMaxInFlight], "max_in_flight", where, 0, MaxMaxInFlight)
	}
	d.CommandTTL = p.defTTL
	if f.has(dCommandTTL) {
		d.CommandTTL, _ = p.duration(f.val[dCommandTTL], "command_ttl", where)
	}
	d.QueueSize = p.defQueue
	if f.has(dQueueSize) {
		d.QueueSize, _ = p.intIn(f.val[dQueueSize], "queue_size", where, MinQueueSize, MaxQueueSize)
	}

	// Register the address and id even when other fields are wrong, so that
	// duplicates and references are still checked; but a device with errors
	// never reaches a returned Config (Parse fails).
	if d.Address != "" {
		cfg.ByAddress[d.Address] = d
	}
	if d.ID != "" {
		cfg.ByID[d.ID] = d
	}
	return d
}

func mapKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func (p *parser) users(f *fields, idx int, key, where string) []string {
	if !f.has(idx) {
		return nil
	}
	vals, lines := p.list(f.val[idx], key, where)
	out := vals[:0]
	for i, v := range vals {
		if v != Anyone && !ValidAddress(v) {
			p.at(lines[i], fmt.Sprintf("invalid user %q in %s %s; expected a mesibo address (%s) or \"*\" for any user", clip(v), key, where, addressRule))
			continue
		}
		out = append(out, v)
	}
	return out
}

// ---- serial ----

var serialKeys = []string{"path", "usb", "baud", "data_bits", "parity", "stop_bits", "dtr", "rts"}
var usbKeys = []string{"vendor", "product", "serial"}

const (
	sPath = iota
	sUSB
	sBaud
	sDataBits
	sParity
	sStopBits
	sDTR
	sRTS
)

var (
	parities  = []string{"none", "odd", "even", "mark", "space"}
	stopBitss = []string{"1", "1.5", "2"}
)

func (p *parser) serial(n *yaml.Node, d *Device, devWhere string, ports map[string]*Device) *transports.SerialPort {
	where := "in serial of " + strings.TrimPrefix(devWhere, "in ")
	if n.Kind != yaml.MappingNode {
		p.at(n.Line, fmt.Sprintf("serial %s is %s; expected a mapping with path: or usb:, and baud:", devWhere, kindName(n)))
		return nil
	}
	var f fields
	p.mapping(n, serialKeys, &f)
	p.unknownKeys(&f, where, serialKeys)
	sp := &transports.SerialPort{Baud: DefaultBaud, DataBits: 8, Parity: "none", StopBits: "1"}
	ok := true
	var portKey string
	switch {
	case f.has(sPath) && f.has(sUSB):
		p.at(f.keyLine[sUSB], fmt.Sprintf("both path and usb %s; expected exactly one of them", where))
		ok = false
	case !f.has(sPath) && !f.has(sUSB):
		p.at(n.Line, fmt.Sprintf("no port %s; expected path: /dev/serial/by-id/... or usb: {vendor: \"0403\", product: \"6001\", serial: ...}", where))
		ok = false
	case f.has(sPath):
		s, good := p.scalar(f.val[sPath], "path", where)
		if good && (!strings.HasPrefix(s, "/") || !validText(s, 4096)) {
			p.at(f.val[sPath].Line, fmt.Sprintf("path %q %s is not an absolute device path; expected e.g. /dev/serial/by-id/usb-FTDI_...", clip(s), where))
			good = false
		}
		if good {
			sp.Path = filepath.Clean(s)
			portKey = "path " + sp.Path
		}
		ok = ok && good
	default:
		good := p.usb(f.val[sUSB], sp, where)
		if good {
			portKey = "usb " + sp.USBVendor + ":" + sp.USBProduct + " serial " + strconv.Quote(sp.USBSerial)
		}
		ok = ok && good
	}
	if portKey != "" {
		if other := ports[portKey]; other != nil {
			p.at(n.Line, fmt.Sprintf("device %s uses the same serial port (%s) as device %s on line %d; expected one device per port (give usb serial: to tell identical adapters apart)",
				d.Address, portKey, other.Address, other.Line))
			ok = false
		} else {
			ports[portKey] = d
		}
	}
	if f.has(sBaud) {
		v, good := p.intIn(f.val[sBaud], "baud", where, MinBaud, MaxBaud)
		sp.Baud, ok = v, ok && good
	}
	if f.has(sDataBits) {
		v, good := p.intIn(f.val[sDataBits], "data_bits", where, 5, 8)
		sp.DataBits, ok = v, ok && good
	}
	if f.has(sParity) {
		s, good := p.scalar(f.val[sParity], "parity", where)
		if good && !slices.Contains(parities, strings.ToLower(s)) {
			p.at(f.val[sParity].Line, fmt.Sprintf("parity %s is %s; expected none, odd, even, mark or space", where, kindName(f.val[sParity])))
			good = false
		}
		sp.Parity, ok = strings.ToLower(s), ok && good
	}
	if f.has(sStopBits) {
		s, good := p.scalar(f.val[sStopBits], "stop_bits", where)
		if good && !slices.Contains(stopBitss, s) {
			p.at(f.val[sStopBits].Line, fmt.Sprintf("stop_bits %s is %s; expected 1, 1.5 or 2", where, kindName(f.val[sStopBits])))
			good = false
		}
		sp.StopBits, ok = s, ok && good
	}
	if f.has(sDTR) {
		v, good := p.boolean(f.val[sDTR], "dtr", where)
		sp.DTR, ok = &v, ok && good
	}
	if f.has(sRTS) {
		v, good := p.boolean(f.val[sRTS], "rts", where)
		sp.RTS, ok = &v, ok && good
	}
	if !ok {
		return nil
	}
	return sp
}

func (p *parser) usb(n *yaml.Node, sp *transports.SerialPort, serialWhere string) bool {
	where := "in serial.usb" + strings.TrimPrefix(serialWhere, "in serial")
	if n.Kind != yaml.MappingNode {
		p.at(n.Line, fmt.Sprintf("usb %s is %s; expected a mapping like {vendor: \"0403\", product: \"6001\", serial: A1B2C3}", serialWhere, kindName(n)))
		return false
	}
	var f fields
	p.mapping(n, usbKeys, &f)
	p.unknownKeys(&f, where, usbKeys)
	ok := true
	hex4 := func(i int, key string) string {
		if !f.has(i) {
			p.at(n.Line, fmt.Sprintf("missing %s %s; add %s: with the USB %s id as 4 hex digits (see lsusb)", key, where, key, key))
			ok = false
			return ""
		}
		s, good := p.scalar(f.val[i], key, where)
		h := strings.ToLower(strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X"))
		if good && !isHex4(h) {
			p.at(f.val[i].Line, fmt.Sprintf("%s %s is %s; expected 4 hex digits such as \"0403\" (quote it so YAML keeps leading zeros)", key, where, kindName(f.val[i])))
			good = false
		}
		if !good {
			ok = false
			return ""
		}
		return h
	}
	sp.USBVendor = hex4(0, "vendor")
	sp.USBProduct = hex4(1, "product")
	if f.has(2) {
		s, good := p.scalar(f.val[2], "serial", where)
		if good && s != "" && !validText(s, 128) {
			p.at(f.val[2].Line, fmt.Sprintf("serial %s is not printable; expected the adapter's serial number as shown by lsusb -v", where))
			good = false
		}
		sp.USBSerial, ok = s, ok && good
	}
	return ok
}

func isHex4(s string) bool {
	if len(s) != 4 {
		return false
	}
	for i := 0; i < 4; i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// ---- groups ----

var groupKeys = []string{"name", "group_id", "members"}

func (p *parser) groups(n *yaml.Node, cfg *Config) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		p.at(n.Line, "groups is "+kindName(n)+"; expected a list of groups, each with name, group_id and members")
		return
	}
	if len(n.Content) > MaxGroups {
		p.at(n.Line, fmt.Sprintf("%d groups; expected at most %d", len(n.Content), MaxGroups))
		return
	}
	byName := map[string]*Group{}
	for i, item := range n.Content {
		num := i + 1
		g := deref(item)
		if g.Kind != yaml.MappingNode {
			p.at(g.Line, fmt.Sprintf("group #%d is %s; expected a mapping with name, group_id and members", num, kindName(g)))
			continue
		}
		var f fields
		p.mapping(g, groupKeys, &f)
		grp := &Group{Line: item.Line}
		where := fmt.Sprintf("in group #%d", num)
		ok := true
		if !f.has(0) {
			p.at(g.Line, fmt.Sprintf("group #%d has no name; add name: (%s)", num, idRule))
			ok = false
		} else if s, good := p.scalar(f.val[0], "name", where); good {
			switch {
			case !ValidID(s):
				p.at(f.val[0].Line, fmt.Sprintf("invalid group name %q; expected %s", clip(s), idRule))
				ok = false
			case byName[s] != nil:
				p.at(f.val[0].Line, fmt.Sprintf("duplicate group name %q (first used on line %d); expected each group to have its own name", s, byName[s].Line))
				ok = false
				where = "in group " + s
			default:
				grp.Name = s
				byName[s] = grp
				where = "in group " + s
			}
		} else {
			ok = false
		}
		p.unknownKeys(&f, where, groupKeys)
		if !f.has(1) {
			p.at(g.Line, fmt.Sprintf("missing group_id %s; add group_id: <the mesibo group id that addresses the group>", where))
			ok = false
		} else if s, good := p.scalar(f.val[1], "group_id", where); good {
			id, err := strconv.ParseUint(s, 10, 64)
			switch {
			case err != nil || id == 0:
				p.at(f.val[1].Line, fmt.Sprintf("group_id %s is %s; expected a positive whole number (the mesibo group id)", where, kindName(f.val[1])))
				ok = false
			case cfg.GroupByID[id] != nil:
				p.at(f.val[1].Line, fmt.Sprintf("duplicate group_id %d %s (first used on line %d by group %s); expected each group to have its own group_id", id, where, cfg.GroupByID[id].Line, cfg.GroupByID[id].Name))
				ok = false
			default:
				grp.GroupID = id
				cfg.GroupByID[id] = grp
			}
		} else {
			ok = false
		}
		if !f.has(2) || isNull(f.val[2]) {
			p.at(g.Line, fmt.Sprintf("missing members %s; add members: [<device address>, ...]", where))
			ok = false
		} else {
			vals, lines := p.list(f.val[2], "members", where)
			if m := deref(f.val[2]); m.Kind == yaml.SequenceNode && len(m.Content) == 0 {
				p.at(m.Line, fmt.Sprintf("members %s is empty; expected at least one device address", where))
				ok = false
			}
			seen := map[string]bool{}
			for j, v := range vals {
				d := cfg.ByAddress[v]
				switch {
				case seen[v]:
					p.at(lines[j], fmt.Sprintf("member %q listed twice %s; expected each device once", clip(v), where))
					ok = false
				case d != nil:
					grp.Members = append(grp.Members, d)
				case byName[v] != nil:
					p.at(lines[j], fmt.Sprintf("member %q %s is a group, not a device; expected device addresses (groups do not nest)", clip(v), where))
					ok = false
				case cfg.ByID[v] != nil:
					p.at(lines[j], fmt.Sprintf("member %q %s is a device id; expected the device's address %q", clip(v), where, cfg.ByID[v].Address))
					ok = false
				default:
					msg := fmt.Sprintf("member %q %s is not a device in this file; expected a device address", clip(v), where)
					if sg := p.suggestAddress(v, cfg); sg != "" {
						msg += fmt.Sprintf(" (did you mean %q?)", sg)
					}
					p.at(lines[j], msg)
					ok = false
				}
				seen[v] = true
			}
		}
		if ok {
			cfg.Groups = append(cfg.Groups, grp)
		}
	}
}

// suggestAddress proposes a close device address for small files (the
// search is linear).
func (p *parser) suggestAddress(s string, cfg *Config) string {
	if len(cfg.Devices) > 2000 {
		return ""
	}
	addrs := make([]string, 0, len(cfg.Devices))
	for _, d := range cfg.Devices {
		if d.Address != "" {
			addrs = append(addrs, d.Address)
		}
	}
	return suggest(s, addrs)
}

// ---- subscriptions ----

var subscriptionKeys = []string{"user", "device", "when"}

func (p *parser) subscriptions(n *yaml.Node, cfg *Config) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		p.at(n.Line, "subscriptions is "+kindName(n)+"; expected a list of subscriptions, each with user, device and optionally when")
		return
	}
	if len(n.Content) > MaxSubscriptions {
		p.at(n.Line, fmt.Sprintf("%d subscriptions; expected at most %d", len(n.Content), MaxSubscriptions))
		return
	}
	type subKey struct{ user, dev, when string }
	seen := map[subKey]int{}
	for i, item := range n.Content {
		num := i + 1
		m := deref(item)
		where := fmt.Sprintf("in subscription #%d", num)
		if m.Kind != yaml.MappingNode {
			p.at(m.Line, fmt.Sprintf("subscription #%d is %s; expected a mapping with user, device and optionally when", num, kindName(m)))
			continue
		}
		var f fields
		p.mapping(m, subscriptionKeys, &f)
		p.unknownKeys(&f, where, subscriptionKeys)
		sub := &Subscription{Line: item.Line}
		ok := true
		if !f.has(0) {
			p.at(m.Line, fmt.Sprintf("missing user %s; add user: <mesibo address to send telemetry to>", where))
			ok = false
		} else if s, good := p.scalar(f.val[0], "user", where); good {
			if !ValidAddress(s) {
				p.at(f.val[0].Line, fmt.Sprintf("invalid user %q %s; expected one mesibo address (%s)", clip(s), where, addressRule))
				ok = false
			}
			sub.User = s
		} else {
			ok = false
		}
		if !f.has(1) {
			p.at(m.Line, fmt.Sprintf("missing device %s; add device: <device address>", where))
			ok = false
		} else if s, good := p.scalar(f.val[1], "device", where); good {
			sub.Device = cfg.ByAddress[s]
			if sub.Device == nil {
				msg := fmt.Sprintf("device %q %s is not a device in this file; expected a device address", clip(s), where)
				if d := cfg.ByID[s]; d != nil {
					msg = fmt.Sprintf("device %q %s is a device id; expected the device's address %q", clip(s), where, d.Address)
				} else if sg := p.suggestAddress(s, cfg); sg != "" {
					msg += fmt.Sprintf(" (did you mean %q?)", sg)
				}
				p.at(f.val[1].Line, msg)
				ok = false
			}
		} else {
			ok = false
		}
		if ok && sub.Device.Role(sub.User) < RoleViewer {
			p.at(f.val[0].Line, fmt.Sprintf("user %q %s may not view device %s; expected the user in the device's owners, operators or viewers", sub.User, where, sub.Device.Address))
			ok = false
		}
		if f.has(2) {
			if s, good := p.scalar(f.val[2], "when", where); !good {
				ok = false
			} else if s = strings.TrimSpace(s); s != "" {
				sub.When = s
				if sub.Device != nil && sub.Device.Profile != nil {
					c, err := schema.ParseCondition(sub.Device.Profile, s)
					if err != nil {
						p.at(f.val[2].Line, fmt.Sprintf("when %q %s does not parse for profile %s: %s",
							clip(s), where, sub.Device.Profile.Name, strings.TrimSuffix(err.Error(), ".")))
						ok = false
					}
					sub.Condition = c
				}
			}
		}
		if !ok {
			continue
		}
		k := subKey{sub.User, sub.Device.Address, sub.When}
		if line, dup := seen[k]; dup {
			p.at(item.Line, fmt.Sprintf("duplicate subscription of %s to %s (same as line %d); expected each subscription once", sub.User, sub.Device.Address, line))
			continue
		}
		seen[k] = item.Line
		cfg.Subscriptions = append(cfg.Subscriptions, sub)
	}
}
