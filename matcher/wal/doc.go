// Package wal is mogate's write-ahead log: an append-only sequence of
// opaque records in segment files, made durable by group commit, and the
// atomic snapshot files that bound replay.
//
// # Segment files
//
// A log directory holds segments named "<first LSN, 20 decimal digits>.wal".
// Every record has a log sequence number (LSN): 1 for the first record ever
// written, then consecutive, also across segments. A segment is:
//
//	header (16 bytes)
//	  0  magic    "MOGATWAL" (8 bytes)
//	  8  version  uint32, little-endian, = 1
//	  12 reserved uint32, = 0
//	frames, back to back, each:
//	  0  length   uint32 LE: payload bytes, 1 .. MaxRecord
//	  4  crc      uint32 LE: CRC-32C (Castagnoli) of bytes 8.. of the frame
//	              followed by the 4 length bytes
//	  8  lsn      uint64 LE
//	  16 payload  length bytes
//
// The length is checked against MaxRecord and against the bytes left in the
// file before anything is allocated. A length of 0 is never written, so a
// zeroed region (a file system that extended the file but not its data)
// never reads as a record.
//
// # Durability
//
// Append copies records into the pending batch and returns at once; the
// batch's Wait returns after the one write and the one fsync that cover it.
// While a batch is being synced the next one fills, so concurrent callers
// share fsyncs (group commit). A new segment's directory entry is fsync'd
// before any record in it is reported durable. After a failed write or
// fsync the log refuses every further append (the page cache can no longer
// be trusted); the process must restart and recover.
//
// # Recovery
//
// Open reads every segment in LSN order and hands each record to the replay
// function. The first frame that fails its checks ends the scan:
//
//   - in the last segment, when no valid frame follows it anywhere in the
//     file, it is a torn tail from a crash mid-write: the bytes from there
//     on are appended to "<segment>.broken", the segment is truncated to the
//     last valid frame and recovery goes on (and logs what it cut);
//   - anywhere else — an earlier segment, or a bad frame followed by valid
//     ones — records that were acknowledged would be lost: Open fails with
//     an error naming the file and the offset, and changes nothing.
//
// LSNs must be consecutive; a gap is corruption too.
//
// # Snapshots
//
// A snapshot file is written to "<name>.tmp", fsync'd, renamed over
// "<name>" only when complete, and the directory is fsync'd. Its bytes:
//
//	0  magic   "MOGATSNP" (8 bytes)
//	8  version uint32 LE = 1
//	12 crc     uint32 LE: CRC-32C of the payload
//	16 length  uint64 LE: payload bytes
//	24 payload
//
// What the payload holds, and which LSNs it covers, is the caller's (the
// matcher's) business; after a snapshot is durable the caller releases the
// segments whose records it covers.
package wal
