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

// func crcDelta64(a, b *byte, n int, k *[deltaPieces]uint64) uint32
//
// AX takes the r of the last piece (no move), X7 the products of the
// others; one crc32 instruction reduces X7 at the end (recsum_amd64.go).
// A whole piece is tested for zero with SSE first and read again, word by
// word, only when it changed: an unchanged piece costs eight loads.
TEXT ·crcDelta64(SB), NOSPLIT, $0-36
	MOVQ a+0(FP), SI
	MOVQ b+8(FP), DI
	MOVQ n+16(FP), CX
	MOVQ k+24(FP), R8
	XORL AX, AX
	PXOR X7, X7
	MOVQ CX, BX
	SHRQ $6, BX   // whole pieces, all after the short one
	ANDQ $63, CX  // bytes of the short first piece
	JZ   whole

	XORL DX, DX

short:
	MOVQ   (SI), R9
	XORQ   (DI), R9
	CRC32Q R9, DX
	ADDQ   $8, SI
	ADDQ   $8, DI
	SUBQ   $8, CX
	JNZ    short
	TESTQ  BX, BX
	JNZ    shortmove
	MOVL   DX, AX
	JMP    reduce

shortmove:
	MOVQ      DX, X0
	MOVQ      (R8)(BX*8), X1
	PCLMULQDQ $0x00, X1, X0
	PXOR      X0, X7

whole:
	TESTQ BX, BX
	JZ    reduce

piece:
	DECQ  BX      // pieces after this one
	MOVOU (SI), X0
	MOVOU 16(SI), X1
	MOVOU 32(SI), X2
	MOVOU 48(SI), X3
	MOVOU (DI), X4
	MOVOU 16(DI), X5
	MOVOU 32(DI), X6
	MOVOU 48(DI), X8
	PXOR  X4, X0
	PXOR  X5, X1
	PXOR  X6, X2
	PXOR  X8, X3
	POR   X1, X0
	POR   X3, X2
	POR   X2, X0
	PTEST X0, X0
	JZ    next

	XORL   DX, DX
	MOVQ   (SI), R9
	XORQ   (DI), R9
	CRC32Q R9, DX
	MOVQ   8(SI), R9
	XORQ   8(DI), R9
	CRC32Q R9, DX
	MOVQ   16(SI), R9
	XORQ   16(DI), R9
	CRC32Q R9, DX
	MOVQ   24(SI), R9
	XORQ   24(DI), R9
	CRC32Q R9, DX
	MOVQ   32(SI), R9
	XORQ   32(DI), R9
	CRC32Q R9, DX
	MOVQ   40(SI), R9
	XORQ   40(DI), R9
	CRC32Q R9, DX
	MOVQ   48(SI), R9
	XORQ   48(DI), R9
	CRC32Q R9, DX
	MOVQ   56(SI), R9
	XORQ   56(DI), R9
	CRC32Q R9, DX
	TESTQ  BX, BX
	JZ     lastpiece
	MOVQ      DX, X0
	MOVQ      (R8)(BX*8), X1
	PCLMULQDQ $0x00, X1, X0
	PXOR      X0, X7
	JMP       next

lastpiece:
	MOVL DX, AX

next:
	ADDQ  $64, SI
	ADDQ  $64, DI
	TESTQ BX, BX
	JNZ   piece

reduce:
	MOVQ   X7, R9
	XORL   DX, DX
	CRC32Q R9, DX
	XORL   DX, AX
	MOVL   AX, ret+32(FP)
	RET
