package schema

import (
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ParseOptions tune Parse.
type ParseOptions struct {
	// ExtraVerbs are the bridge's own verbs (usually ReservedVerbs). Parse
	// does not parse their arguments: it returns an Invocation with Cmd nil
	// and the rest of the line in Rest. They are checked before the
	// profile's verbs and are offered as suggestions for typos.
	ExtraVerbs []string
}

// Invocation is a parsed chat command.
type Invocation struct {
	Verb string // lower case
	// Args holds the typed values by argument name: int64, float64, string
	// or bool, numbers in the argument's declared unit, defaults filled in.
	// Never nil for a profile command.
	Args map[string]any
	Cmd  *Command // nil for an ExtraVerbs verb
	// Rest is the text after an ExtraVerbs verb, trimmed ("temp > 30" for
	// "watch temp > 30"). Empty for profile commands.
	Rest string
	// JSON reports that the input used the JSON form (an app, not a person).
	JSON bool
}

// String returns the invocation in canonical chat form, with every argument
// named, in declared order, numbers in their unit: "move distance=10cm
// speed=0.5". Parsing it gives back the same Args.
func (inv *Invocation) String() string {
	if inv.Cmd == nil {
		if inv.Rest == "" {
			return inv.Verb
		}
		return inv.Verb + " " + inv.Rest
	}
	var b strings.Builder
	b.WriteString(inv.Verb)
	for _, a := range inv.Cmd.Args {
		v, ok := inv.Args[a.Name]
		if !ok {
			continue
		}
		b.WriteByte(' ')
		b.WriteString(a.Name)
		b.WriteByte('=')
		b.WriteString(a.format(v))
	}
	return b.String()
}

// format writes a value of the argument as chat text.
func (a *Arg) format(v any) string {
	switch x := v.(type) {
	case int64:
		return strconv.FormatInt(x, 10) + a.Unit
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64) + a.Unit
	case bool:
		if x {
			return "on"
		}
		return "off"
	case string:
		return chatValue(x)
	}
	return chatValue(formatAny(v))
}

// Parse reads one chat message as a command of the profile. The forms:
//
//	move 10cm speed=0.5          positional arguments, then name=value ones
//	move distance=0.1m           values in another unit of the same dimension are converted
//	say "hello world"            "double" or 'single' quotes, \" \\ \n \t \r escapes
//	say hello world              a text argument in last place, unquoted, takes the rest of the line
//	{"cmd":"move","args":{"distance":10}}   the JSON form for apps
//
// Verbs and names are case-insensitive; any whitespace separates words.
// Errors are *ParseError whose message is the complete answer for a person.
func (p *Profile) Parse(input string, opts ParseOptions) (*Invocation, error) {
	if len(input) > MaxInputLen {
		return nil, &ParseError{Kind: ErrTooLong, Msg: "the message is too long (" + strconv.Itoa(len(input)) +
			" bytes; at most " + strconv.Itoa(MaxInputLen) + ")"}
	}
	if !utf8.ValidString(input) {
		return nil, &ParseError{Kind: ErrSyntax, Msg: "the message is not valid text (UTF-8)"}
	}
	for _, r := range input {
		if isControl(r) && !isSpace(r) {
			return nil, &ParseError{Kind: ErrSyntax, Msg: "the message contains a control character (" +
				strconv.QuoteRune(r) + ")"}
		}
	}
	s := strings.TrimFunc(input, isSpace)
	if s == "" {
		return nil, &ParseError{Kind: ErrSyntax, Msg: "empty command. " + p.commandList()}
	}
	if s[0] == '{' {
		return p.parseJSON(s, opts)
	}
	end := strings.IndexFunc(s, isSpace)
	if end < 0 {
		end = len(s)
	}
	verb := lower(s[:end])
	rest := strings.TrimLeftFunc(s[end:], isSpace)
	for _, x := range opts.ExtraVerbs {
		if strings.EqualFold(x, verb) {
			return &Invocation{Verb: verb, Rest: rest}, nil
		}
	}
	cmd := p.Command(verb)
	if cmd == nil {
		return nil, p.unknownVerb(verb, opts)
	}
	var buf [8]token
	toks, problem := tokenize(rest, buf[:0])
	if problem != nil {
		problem.Verb = cmd.Verb
		problem.Msg += "; usage: " + cmd.Usage()
		return nil, problem
	}
	return cmd.bind(toks, rest)
}

// lower lower-cases s without allocating when it is lower case already.
func lower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' || c >= utf8.RuneSelf {
			return strings.ToLower(s)
		}
	}
	return s
}

func isSpace(r rune) bool { return unicode.IsSpace(r) }

func (p *Profile) unknownVerb(verb string, opts ParseOptions) *ParseError {
	cands := make([]string, 0, len(p.Commands)+len(opts.ExtraVerbs))
	cands = append(cands, p.Verbs()...)
	cands = append(cands, opts.ExtraVerbs...)
	e := &ParseError{Kind: ErrUnknownVerb, Verb: verb}
	msg := "unknown command " + show(verb)
	if sug := Suggest(verb, cands); sug != "" {
		e.Suggestion = lower(sug)
		msg += "; did you mean '" + e.Suggestion + "'?"
	} else {
		msg += "."
	}
	e.Msg = msg + " " + p.commandList()
	return e
}

// commandList is "Commands: move, turn, stop. Type 'help' for details."
func (p *Profile) commandList() string {
	if len(p.Commands) == 0 {
		return "This device takes no commands. Type 'help' for details."
	}
	return "Commands: " + strings.Join(p.Verbs(), ", ") + ". Type 'help' for details."
}

// token is one word after the verb.
type token struct {
	name   string // for name=value: the name as typed
	value  string
	named  bool
	quoted bool
	start  int // byte offset of the word in the argument text
}

func isQuote(r rune) bool {
	return r == '"' || r == '\'' || r == '“' || r == '‘'
}

// closes reports whether r closes a quote opened with open. Phones turn
// straight quotes into typographic ones, so “…” and ‘…’ pair as well.
func closes(open, r rune) bool {
	switch open {
	case '"':
		return r == '"'
	case '\'':
		return r == '\''
	case '“':
		return r == '”' || r == '"'
	case '‘':
		return r == '’' || r == '\''
	}
	return false
}

// tokenize splits the arguments. A quote opens a quoted value only at the
// start of a word or right after name=; elsewhere it is an ordinary
// character (so "don't" needs no quoting).
func tokenize(s string, toks []token) ([]token, *ParseError) {
	i := 0
	for {
		for i < len(s) {
			r, n := utf8.DecodeRuneInString(s[i:])
			if !isSpace(r) {
				break
			}
			i += n
		}
		if i >= len(s) {
			return toks, nil
		}
		var t token
		r, _ := utf8.DecodeRuneInString(s[i:])
		if isQuote(r) {
			v, next, err := quoted(s, i)
			if err != nil {
				return nil, err
			}
			t = token{value: v, quoted: true, start: i}
			i = next
		} else {
			end := i
			for end < len(s) {
				r, n := utf8.DecodeRuneInString(s[end:])
				if isSpace(r) {
					break
				}
				end += n
			}
			word := s[i:end]
			eq := strings.IndexByte(word, '=')
			switch {
			case eq == 0:
				return nil, &ParseError{Kind: ErrSyntax, Msg: "missing argument name before '=' in " + show(word)}
			case eq > 0:
				t = token{name: word[:eq], named: true}
				vs := i + eq + 1
				if r, _ := utf8.DecodeRuneInString(s[vs:]); vs < len(s) && isQuote(r) {
					v, next, err := quoted(s, vs)
					if err != nil {
						return nil, err
					}
					t.value, t.quoted = v, true
					end = next
				} else {
					t.value = word[eq+1:]
				}
			default:
				t = token{value: word}
			}
			t.start = i
			i = end
		}
		toks = append(toks, t)
	}
}

// quoted reads the quoted value whose opening quote is at s[i]. It returns
// the value and the index after the closing quote, which must end the word.
func quoted(s string, i int) (string, int, *ParseError) {
	open, n := utf8.DecodeRuneInString(s[i:])
	start := i + n
	j := start
	var b *strings.Builder
	for j < len(s) {
		r, n := utf8.DecodeRuneInString(s[j:])
		if r == '\\' {
			if b == nil {
				b = &strings.Builder{}
				b.WriteString(s[start:j])
			}
			if j+1 >= len(s) {
				break
			}
			e, m := utf8.DecodeRuneInString(s[j+1:])
			switch e {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			case '\\':
				b.WriteByte('\\')
			default:
				if isQuote(e) || e == '”' || e == '’' {
					b.WriteRune(e)
				} else { // not an escape: keep the backslash
					b.WriteByte('\\')
					b.WriteRune(e)
				}
			}
			j += 1 + m
			continue
		}
		if closes(open, r) {
			v := s[start:j]
			if b != nil {
				v = b.String()
			}
			next := j + n
			if next < len(s) {
				if r2, _ := utf8.DecodeRuneInString(s[next:]); !isSpace(r2) {
					return "", 0, &ParseError{Kind: ErrSyntax, Msg: "put a space after the closing quote of " + show(s[i:next])}
				}
			}
			return v, next, nil
		}
		if b != nil {
			b.WriteRune(r)
		}
		j += n
	}
	closer := string(open)
	switch open {
	case '“':
		closer = "”"
	case '‘':
		closer = "’"
	}
	return "", 0, &ParseError{Kind: ErrSyntax, Msg: "unterminated quote: " + show(s[i:]) + " needs a closing " + closer}
}

// bind assigns the tokens (words of rest) to the command's arguments.
// Every word binds to a distinct argument, so at most MaxArgs are taken.
func (c *Command) bind(toks []token, rest string) (*Invocation, error) {
	args := make(map[string]any, len(c.Args))
	pos := 0
	named := false
	for i, t := range toks {
		if !t.named && !named && pos == len(c.Args)-1 && c.Args[pos].Type == TypeString && !t.quoted && greedy(toks[i:]) {
			// The last argument is text: unquoted, it takes the rest of
			// the line ("say hello there").
			a := c.Args[pos]
			v, problem := a.checkString(strings.TrimRightFunc(rest[t.start:], isSpace))
			if problem != "" {
				return nil, c.errorf(ErrBadArg, a.Name, "", a.Name+" "+problem)
			}
			args[a.Name] = v
			break
		}
		var a *Arg
		if t.named {
			named = true
			a = c.Arg(t.name)
			if a == nil {
				return nil, c.unknownArg(t.name)
			}
			if _, dup := args[a.Name]; dup {
				return nil, c.errorf(ErrBadArg, a.Name, "", a.Name+" is given twice")
			}
			if t.value == "" && !t.quoted {
				return nil, c.errorf(ErrBadArg, a.Name, "", a.Name+" needs a value after '='")
			}
		} else {
			if named {
				return nil, c.errorf(ErrSyntax, "", "", "put arguments without a name before name=value ones")
			}
			if pos >= len(c.Args) {
				if e := c.glueHint(toks, i); e != nil {
					return nil, e
				}
				if len(c.Args) == 0 {
					return nil, c.errorf(ErrTooManyArgs, "", "", c.Verb+" takes no arguments")
				}
				return nil, c.errorf(ErrTooManyArgs, "", "", "too many arguments: "+c.Verb+" takes at most "+
					strconv.Itoa(len(c.Args))+", "+show(t.value)+" is one too many")
			}
			a = c.Args[pos]
			pos++
			if _, dup := args[a.Name]; dup {
				return nil, c.errorf(ErrBadArg, a.Name, "", a.Name+" is given twice")
			}
		}
		v, problem := a.parseText(t.value)
		if problem != "" {
			if !t.named {
				if e := c.glueHint(toks, i); e != nil {
					return nil, e
				}
			}
			e := c.errorf(ErrBadArg, a.Name, "", a.Name+" "+problem)
			if a.Type == TypeEnum {
				e.Suggestion = Suggest(t.value, a.Values)
			}
			return nil, e
		}
		args[a.Name] = v
	}
	return c.finish(args, false)
}

// greedy reports whether the words are several and all positional.
func greedy(toks []token) bool {
	if len(toks) < 2 {
		return false
	}
	for _, t := range toks {
		if t.named {
			return false
		}
	}
	return true
}

// finish checks required arguments and fills in defaults.
func (c *Command) finish(args map[string]any, json bool) (*Invocation, error) {
	for _, a := range c.Args {
		if _, ok := args[a.Name]; ok {
			continue
		}
		if a.Required {
			return nil, c.errorf(ErrMissingArg, a.Name, "", "missing "+a.Name)
		}
		if a.Default != nil {
			args[a.Name] = a.Default
		}
	}
	return &Invocation{Verb: c.Verb, Args: args, Cmd: c, JSON: json}, nil
}

// glueHint explains "move 10 cm": a positional word that is a unit right
// after a bare number.
func (c *Command) glueHint(toks []token, i int) *ParseError {
	t := toks[i]
	if i == 0 || t.named || t.quoted || lookupUnit(t.value) == nil {
		return nil
	}
	prev := toks[i-1]
	if prev.named || prev.quoted || scanNumber(prev.value) != len(prev.value) {
		return nil
	}
	return c.errorf(ErrSyntax, "", "", "write the unit right after the number, without a space: "+prev.value+t.value)
}

func (c *Command) unknownArg(name string) *ParseError {
	if len(c.Args) == 0 {
		return c.errorf(ErrBadArg, name, "", c.Verb+" takes no arguments")
	}
	names := make([]string, len(c.Args))
	for i, a := range c.Args {
		names[i] = a.Name
	}
	msg := c.Verb + " has no argument " + show(name)
	sug := Suggest(name, names)
	if sug != "" {
		msg += " (did you mean '" + sug + "'?)"
	}
	return c.errorf(ErrBadArg, name, sug, msg)
}

// errorf builds a ParseError about the command; the usage is appended.
func (c *Command) errorf(kind ErrorKind, arg, suggestion, msg string) *ParseError {
	return &ParseError{Kind: kind, Verb: c.Verb, Arg: arg, Suggestion: suggestion, Msg: msg + "; usage: " + c.Usage()}
}

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
