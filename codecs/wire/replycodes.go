package wire

import "strconv"

// ReplyCode is the value a device puts in Reply.Code when the outcome is
// OutcomeFailed. Codes 1–99 are defined by the protocol (the constants below;
// unassigned ones are reserved); codes 100 and above are device- or
// profile-specific and the profile should describe them. A failed reply with
// code 0 is treated as ReplyInternal.
//
// Reply.Code keeps its int64 type; convert with wire.ReplyCode(r.Code).
type ReplyCode int64

// Reply codes. The numbers are part of the wire protocol.
const (
	ReplyOK          ReplyCode = 0 // no error (not sent with a failed outcome)
	ReplyBadRequest  ReplyCode = 1 // the command is malformed or incomplete
	ReplyUnknownVerb ReplyCode = 2 // the device does not implement Verb
	ReplyBadArgument ReplyCode = 3 // an argument is missing, of the wrong type or out of range (Text names it)
	ReplyBusy        ReplyCode = 4 // the device is running something that excludes this command; try later
	ReplyTimeout     ReplyCode = 5 // the device started the command but it did not finish in time
	ReplyNotAllowed  ReplyCode = 6 // refused by the device's own state: disarmed, interlocked, manual mode
	ReplyInternal    ReplyCode = 7 // the device failed for a reason of its own (hardware fault, bug)
	ReplyExpired     ReplyCode = 8 // the command's deadline had passed before the device could start it
	ReplyRestarted   ReplyCode = 9 // Command.Boot names an earlier boot of the device: not run (an earlier boot may have run it)
)

// String names the code ("bad_argument"), or "code_N" for codes without a name.
func (c ReplyCode) String() string {
	switch c {
	case ReplyOK:
		return "ok"
	case ReplyBadRequest:
		return "bad_request"
	case ReplyUnknownVerb:
		return "unknown_verb"
	case ReplyBadArgument:
		return "bad_argument"
	case ReplyBusy:
		return "busy"
	case ReplyTimeout:
		return "timeout"
	case ReplyNotAllowed:
		return "not_allowed"
	case ReplyInternal:
		return "internal"
	case ReplyExpired:
		return "expired"
	case ReplyRestarted:
		return "restarted"
	}
	return "code_" + strconv.FormatInt(int64(c), 10)
}
