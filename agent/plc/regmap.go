package plc

import (
	"math"
	"slices"
	"sort"
	"strings"
)

// The register map (docs/integrations.md, PLC interface). Addresses are 0-based protocol
// addresses. Block 0 (addresses 0-99) is the agent's; camera i (0-based, in the order of
// cameras in the config) is block i+1, at 100*(i+1). Holding and input registers hold the
// same values. A 32-bit value is two registers, high word first.
const (
	BlockSize = 100
	// MapVersion is in register 0: it changes when the meaning of a register changes.
	MapVersion = 1

	// Agent block (block 0).
	RegMapVersion = 0
	RegHeartbeat  = 1 // also at the same offset in every camera block
	RegAgentState = 2 // also at the same offset in every camera block
	RegCameras    = 3
	RegBlockSize  = 4

	// Camera block, offsets from the block's start.
	OffHeartbeat   = 1
	OffAgentState  = 2
	OffCameraState = 3
	OffIndex       = 4 // the camera's index in the config (block number - 1)
	OffVerdict     = 5
	OffTagIndex    = 6
	OffProbability = 7  // ×10000
	OffFPS         = 8  // ×100
	OffTagCount    = 9  // tags in the camera's tag list
	OffSequence    = 10 // uint32: one more per decision
	OffDecidedAt   = 12 // uint32: Unix seconds of the last decision
	OffParts       = 14 // uint32
	OffOK          = 16 // uint32
	OffNOK         = 18 // uint32
	OffUnknown     = 20 // uint32
	OffCountsSince = 22 // uint32: Unix seconds the counts began (last reset)
	OffTagCounts   = 30 // uint32 each, MaxTagCounts of them: parts by tag, in tag-list order
	MaxTagCounts   = 15
	OffName        = 60 // the camera's name, ASCII, two characters a register, NameRegs long
	NameRegs       = 20
)

// Agent states (RegAgentState).
const (
	AgentUnknown = 0 // no status yet
	AgentOnline  = 1
	AgentOffline = 2 // the agent is stopping (its status said offline)
)

// Camera states (OffCameraState), from the camera states of the status and stats.
const (
	CameraStopped      = 0 // stopped, or not reported yet
	CameraOnline       = 1
	CameraReconnecting = 2
	CameraStarting     = 3
	CameraEnded        = 4 // a file or folder source reached its end
	CameraOther        = 5 // a state this map does not know
)

// Verdict codes (OffVerdict).
const (
	VerdictNone    = 0 // no decision yet, or the camera has no verdicts and the tag is decided
	VerdictOK      = 1
	VerdictNOK     = 2
	VerdictUnknown = 3 // no verdicts and the tag is unknown, or a verdict this map does not know
)

// Tag index values (OffTagIndex) besides 1..n, the 1-based position in the tag list.
const (
	TagNone    = 0      // no decision yet
	TagUnknown = 0xFFFE // the part's tag is unknown: its evidence decided nothing
	TagOther   = 0xFFFF // a tag not in the camera's tag list
)

// unknownTag is the tag of a part whose evidence decides nothing (agent/steps.Unknown).
const unknownTag = "unknown"

func cameraState(s string) uint16 {
	switch s {
	case "stopped", "":
		return CameraStopped
	case "online":
		return CameraOnline
	case "reconnecting":
		return CameraReconnecting
	case "starting":
		return CameraStarting
	case "ended":
		return CameraEnded
	}
	return CameraOther
}

func agentState(s string) uint16 {
	switch s {
	case "":
		return AgentUnknown
	case "online":
		return AgentOnline
	}
	return AgentOffline
}

func verdictCode(verdict, tag string) uint16 {
	switch verdict {
	case "ok":
		return VerdictOK
	case "nok":
		return VerdictNOK
	case "":
		if tag == unknownTag {
			return VerdictUnknown
		}
		return VerdictNone
	}
	return VerdictUnknown
}

// tagList is the sorted, deduplicated tag list of a camera, without unknown.
func tagList(tags []string) []string {
	out := make([]string, 0, len(tags))
	for _, t := range tags {
		if t != "" && t != unknownTag {
			out = append(out, t)
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

func tagIndex(list []string, tag string) uint16 {
	if tag == unknownTag {
		return TagUnknown
	}
	if i := sort.SearchStrings(list, tag); i < len(list) && list[i] == tag && i < TagOther-2 {
		return uint16(i + 1)
	}
	return TagOther
}

// scaled returns v×k rounded, clamped to 0..max; NaN is 0.
func scaled(v, k float64, max uint16) uint16 {
	x := math.Round(v * k)
	switch {
	case math.IsNaN(x) || x <= 0:
		return 0
	case x >= float64(max):
		return max
	}
	return uint16(x)
}

// put32 writes v as two registers, high word first. Counters wrap at 2^32.
func put32(r []uint16, v uint64) {
	r[0] = uint16(v >> 16)
	r[1] = uint16(v)
}

// unix32 is t's Unix seconds as uint32; before 1970 or unset is 0.
func unix32(sec int64) uint64 {
	if sec <= 0 || sec > math.MaxUint32 {
		return 0
	}
	return uint64(sec)
}

// putName writes name as ASCII, two characters a register (first in the high byte), padded
// with zeros; bytes beyond ASCII become '?', and what does not fit is cut.
func putName(r []uint16, name string) {
	clear(r)
	b := []byte(strings.Map(func(c rune) rune {
		if c < 0x20 || c > 0x7e {
			return '?'
		}
		return c
	}, name))
	for i := 0; i < len(b) && i < 2*len(r); i++ {
		if i%2 == 0 {
			r[i/2] |= uint16(b[i]) << 8
		} else {
			r[i/2] |= uint16(b[i])
		}
	}
}
