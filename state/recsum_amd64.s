#include "textflag.h"

// func crc32c3(p *byte, r, k int) (a, b, c uint32)
//
// Chain A (AX) starts at ^0 and takes r qwords alone, then the three
// chains take one qword each per round for k rounds: A from p+8r, B (CX)
// from 8k further, C (DX) from 16k further. The crc32 instruction has a
// latency of three cycles and a throughput of one, so the rounds cost
// about what one chain alone would.
TEXT ·crc32c3(SB), NOSPLIT, $0-36
	MOVQ p+0(FP), SI
	MOVQ r+8(FP), BX
	MOVQ k+16(FP), R11
	MOVL $0xffffffff, AX
	XORL CX, CX
	XORL DX, DX
	TESTQ BX, BX
	JZ   triple

alone:
	CRC32Q (SI), AX
	ADDQ   $8, SI
	DECQ   BX
	JNZ    alone

triple:
	MOVQ R11, R12
	SHLQ $3, R12
	LEAQ (SI)(R12*1), R8
	LEAQ (R8)(R12*1), R9

round:
	CRC32Q (SI), AX
	CRC32Q (R8), CX
	CRC32Q (R9), DX
	ADDQ   $8, SI
	ADDQ   $8, R8
	ADDQ   $8, R9
	DECQ   R11
	JNZ    round

	MOVL AX, a+24(FP)
	MOVL CX, b+28(FP)
	MOVL DX, c+32(FP)
	RET
