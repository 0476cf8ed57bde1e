package wire

// Envelope map keys. Every envelope is one CBOR map with small unsigned
// integer keys (one byte each on the wire). A key has the same meaning and the
// same CBOR type in every envelope kind that uses it; docs/protocol.md lists
// which kinds use which keys. Receivers ignore keys they do not know (and
// known keys the kind does not use), so new keys can be added without a new
// protocol version. Keys 20–23 are reserved for the next one-byte additions;
// negative keys are reserved for vendor extensions and always ignored.
const (
	KeyVersion        = 0  // uint, required: protocol major version (ProtocolVersion)
	KeyKind           = 1  // uint, required: Kind
	KeyID             = 2  // uint: Command.ID, Reply.ID, or Telemetry/State/Heartbeat Seq
	KeyDevice         = 3  // tstr: device id
	KeyVerb           = 4  // tstr: Command.Verb
	KeyBody           = 5  // map tstr => scalar: Command.Args, Reply.Result, Telemetry.Values
	KeyDeadline       = 6  // int: Command.Deadline, Unix ms
	KeyIdemKey        = 7  // tstr: Command.IdemKey
	KeyReplyTo        = 8  // tstr: Command.ReplyTo
	KeyOutcome        = 9  // uint: Reply.Outcome
	KeyCode           = 10 // int: Reply.Code (ReplyCode)
	KeyText           = 11 // tstr: Reply.Text
	KeyTS             = 12 // int: Telemetry.TS, Unix ms
	KeyOnline         = 13 // bool: State.Online
	KeyFirmware       = 14 // tstr: State/Hello Firmware
	KeyProfile        = 15 // tstr: State/Hello Profile
	KeyProfileVersion = 16 // tstr: State/Hello ProfileVersion
	KeyBoot           = 17 // uint: Hello.Boot, Command.Boot
	KeyMaxFrame       = 18 // uint (32-bit): Hello.MaxFrame
	KeyUptime         = 19 // uint: Heartbeat.Uptime, ms
	KeyWindow         = 20 // uint (32-bit): Hello.Window
)

var keyNames = [...]string{
	KeyVersion:        "version",
	KeyKind:           "kind",
	KeyID:             "id/seq",
	KeyDevice:         "device",
	KeyVerb:           "verb",
	KeyBody:           "args/result/values",
	KeyDeadline:       "deadline",
	KeyIdemKey:        "idempotency key",
	KeyReplyTo:        "reply-to",
	KeyOutcome:        "outcome",
	KeyCode:           "code",
	KeyText:           "text",
	KeyTS:             "ts",
	KeyOnline:         "online",
	KeyFirmware:       "firmware",
	KeyProfile:        "profile",
	KeyProfileVersion: "profile version",
	KeyBoot:           "boot",
	KeyMaxFrame:       "max frame",
	KeyUptime:         "uptime",
	KeyWindow:         "window",
}

func keyName(k int) string {
	if k >= 0 && k < len(keyNames) {
		return keyNames[k]
	}
	return ""
}
