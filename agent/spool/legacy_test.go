package spool

import (
	"encoding/binary"
	"hash/crc32"
)

// putLegacyHeader writes the header of a version 1 record: length and CRC, no marker.
func putLegacyHeader(hdr, body []byte) {
	binary.LittleEndian.PutUint32(hdr[0:], uint32(len(body)))
	binary.LittleEndian.PutUint32(hdr[4:], crc32.Checksum(body, castagnoli))
}
