package matcher

import "github.com/mogate/mogate/matcher/text"

// The code rules every store applies when it creates a session (the text
// rules themselves are package text).
const (
	// MaxCodeLen is the longest code, in normalized characters.
	MaxCodeLen = text.MaxCodeLen
	// MinCaptureCodeLen is the shortest code of a capture session: the
	// code alone identifies the session, so it is generated, at least this
	// long.
	MinCaptureCodeLen = text.MinCaptureCodeLen
)
