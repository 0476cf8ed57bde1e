package wire

// Serial frames carry CRC-16/CCITT-FALSE (also catalogued as
// CRC-16/IBM-3740): width 16, polynomial 0x1021, init 0xFFFF, input and
// output not reflected, xorout 0x0000, check value 0x29B1 (the CRC of the
// ASCII bytes "123456789"). For frames up to 1029 bytes it detects every
// error of 1–3 bits, every odd number of bit errors and every burst up to 16
// bits; it costs a 512-byte table or an 8-step bit loop on a microcontroller,
// and many vendor HALs implement it. CRC-32C would add 2 bytes per frame for
// protection these short frames do not need.

const (
	crc16Poly = 0x1021
	crc16Init = 0xFFFF
	// CRC16Check is the CRC-16/CCITT-FALSE of "123456789".
	CRC16Check = 0x29B1
)

// crc16Tables[k][i] is the CRC register after feeding byte i followed by k
// zero bytes into a zero register (slicing-by-4; crc16Tables[0] is the
// classic byte table).
var crc16Tables = func() (t [4][256]uint16) {
	for i := range t[0] {
		c := uint16(i) << 8
		for range 8 {
			if c&0x8000 != 0 {
				c = c<<1 ^ crc16Poly
			} else {
				c <<= 1
			}
		}
		t[0][i] = c
	}
	for k := 1; k < 4; k++ {
		for i := range t[k] {
			p := t[k-1][i]
			t[k][i] = p<<8 ^ t[0][p>>8]
		}
	}
	return t
}()

// CRC16 returns the CRC-16/CCITT-FALSE of p.
func CRC16(p []byte) uint16 { return UpdateCRC16(crc16Init, p) }

// UpdateCRC16 continues a CRC-16/CCITT-FALSE computation: CRC16(a||b) ==
// UpdateCRC16(CRC16(a), b).
func UpdateCRC16(crc uint16, p []byte) uint16 {
	t := &crc16Tables
	for len(p) >= 4 {
		x := crc ^ (uint16(p[0])<<8 | uint16(p[1]))
		crc = t[3][x>>8] ^ t[2][x&0xff] ^ t[1][p[2]] ^ t[0][p[3]]
		p = p[4:]
	}
	for _, b := range p {
		crc = crc<<8 ^ t[0][byte(crc>>8)^b]
	}
	return crc
}
