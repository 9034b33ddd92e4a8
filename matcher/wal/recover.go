package wal

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
)

// recover replays every segment and returns the last LSN seen (0 for none).
func (w *WAL) recover(replay func(uint64, []byte) error) (uint64, error) {
	names, err := w.fs.ReadDir(w.dir)
	if err != nil {
		return 0, fmt.Errorf("wal: %w", err)
	}
	var segs []segment
	for _, n := range names {
		if first, ok := parseSegmentName(n); ok {
			segs = append(segs, segment{first: first, name: n})
		}
	}
	var last uint64
	for i, s := range segs {
		kept, err := w.replaySegment(s, i == len(segs)-1, &last, replay)
		if err != nil {
			return 0, err
		}
		if !kept {
			continue
		}
		if last == 0 || last < s.first-1 {
			last = s.first - 1 // an empty segment still fixes where LSNs go on
		}
		w.segments = append(w.segments, s)
	}
	return last, nil
}

// replaySegment replays the segment s, whose records follow LSN *last (0:
// none before), setting *last to each record's. It reports whether the
// segment stays (one with a torn header is removed). The segment's bytes
// are released when it returns: replay copies what it keeps.
func (w *WAL) replaySegment(s segment, isLast bool, last *uint64, replay func(uint64, []byte) error) (kept bool, err error) {
	path := filepath.Join(w.dir, s.name)
	data, release, err := readAll(w.fs, path)
	if err != nil {
		return false, fmt.Errorf("wal: %w", err)
	}
	defer release()
	if *last != 0 && s.first != *last+1 {
		return false, fmt.Errorf("%w: %s starts at LSN %d but the previous segment ended at %d", ErrCorrupt, path, s.first, *last)
	}
	if len(data) < headerSize || !bytes.Equal(data[:8], []byte(segmentMagic)) {
		if isLast && (len(data) < headerSize || allZero(data)) {
			// Crashed between creating the segment and syncing its header.
			if err := w.cut(path, data, 0); err != nil {
				return false, err
			}
			if err := w.fs.Remove(path); err != nil {
				return false, fmt.Errorf("wal: %w", err)
			}
			w.opt.Logger.Warn("wal: removed a segment with a torn header", "file", path, "bytes", len(data))
			return false, nil
		}
		return false, fmt.Errorf("%w: %s: bad segment header", ErrCorrupt, path)
	}
	off := headerSize
	expect := s.first
	for off < len(data) {
		lsn, payload, size, ok := DecodeFrame(data[off:], w.opt.MaxRecord)
		if ok && lsn != expect {
			return false, fmt.Errorf("%w: %s at offset %d: LSN %d, want %d", ErrCorrupt, path, off, lsn, expect)
		}
		if !ok {
			if !isLast || w.validFrameAfter(data, off+1) {
				return false, fmt.Errorf("%w: %s at offset %d: bad frame before the end of the log; acknowledged records would be lost, so recovery stops (restore from backup, or move the file aside knowingly)", ErrCorrupt, path, off)
			}
			if err := w.cut(path, data, off); err != nil {
				return false, err
			}
			w.opt.Logger.Warn("wal: truncated a torn tail", "file", path, "offset", off, "bytes_cut", len(data)-off, "kept_in", path+".broken")
			break
		}
		if err := replay(lsn, payload); err != nil {
			return false, fmt.Errorf("wal: %s at offset %d (LSN %d): %w", path, off, lsn, err)
		}
		*last, expect = lsn, lsn+1
		off += size
	}
	return true, nil
}

// validFrameAfter reports whether any offset from start on holds a valid frame.
func (w *WAL) validFrameAfter(data []byte, start int) bool {
	for o := start; o+frameOverhead <= len(data); o++ {
		if _, _, _, ok := DecodeFrame(data[o:], w.opt.MaxRecord); ok {
			return true
		}
	}
	return false
}

// cut keeps data[off:] in path.broken and truncates path to off.
func (w *WAL) cut(path string, data []byte, off int) error {
	if off < len(data) {
		bf, err := w.fs.OpenFile(path+".broken", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("wal: %w", err)
		}
		if _, err := bf.Write(data[off:]); err != nil {
			bf.Close()
			return fmt.Errorf("wal: %w", err)
		}
		if err := bf.Sync(); err != nil {
			bf.Close()
			return fmt.Errorf("wal: %w", err)
		}
		if err := bf.Close(); err != nil {
			return fmt.Errorf("wal: %w", err)
		}
	}
	f, err := w.fs.OpenFile(path, os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("wal: %w", err)
	}
	defer f.Close()
	if err := f.Truncate(int64(off)); err != nil {
		return fmt.Errorf("wal: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("wal: %w", err)
	}
	return w.fs.SyncDir(w.dir)
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
