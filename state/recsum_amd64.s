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

// MOVEPIECE moves the r of a piece (DX) with BX pieces after it to its
// place, times the K at R8 - 64*BX, and adds the product into X7.
#define MOVEPIECE \
	MOVQ      BX, R11          \
	SHLQ      $6, R11          \
	NEGQ      R11              \
	MOVQ      DX, X0           \
	MOVQ      (R8)(R11*1), X1  \
	PCLMULQDQ $0x00, X1, X0    \
	PXOR      X0, X7

// func crcDelta64(a, b *byte, n int, k *uint64) uint32
//
// AX takes the r of the last piece (no move), X7 the products of the
// others; one crc32 instruction reduces X7 at the end (recsum_amd64.go).
// A whole piece is tested for zero with SSE first and read again, word by
// word, only when it changed: an unchanged piece costs eight loads. The K
// of a piece with j pieces (8j words) after it is at k - 64j.
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
	MOVEPIECE

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
	MOVEPIECE
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

// func commit512(rec, scratch, undo *byte, q int, k *uint64, active *uint64, entry uint64)
//
// Store.commit for a record of q words (recsum_amd64.go): the same stores
// in the same order as Store.commitWith, each a plain MOV, in the order
// written here (x86-TSO keeps it for other cores, and a killed process
// leaves a prefix of it):
//
//	undo = rec                  (1) the old record saved
//	*active = entry             (2) the journal entry published
//	rec.Seq = Seq+1             (3) readers retry from here
//	rec[16:] = scratch[16:]         the new value, padding included
//	rec.Sum = Sum ^ delta           the carried Sum
//	rec.Seq = Seq+2                 readers take the record again
//	*active = 0                 (4) the entry retired
//
// The delta is computed in the first loop, from the words it loads for
// the undo copy, but reduced to 32 bits only after the record is written:
// the stores before the Sum do not wait for it. Each 64-byte block
// contributes clmul(a ^ b, K) per word (VPCLMULQDQ, both words of each
// 128-bit lane), and the Seq and Sum word of the first block is masked
// off (K2). R12 keeps rec, R13 q, R9 the old Sum, R11 the old Seq, Z4 the
// products.
TEXT ·commit512(SB), NOSPLIT, $0-56
	MOVQ   rec+0(FP), SI
	MOVQ   scratch+8(FP), DI
	MOVQ   undo+16(FP), DX
	MOVQ   q+24(FP), CX
	MOVQ   k+32(FP), R8
	MOVQ   SI, R12
	MOVQ   CX, R13
	MOVL   4(SI), R9
	VPXORQ Z4, Z4, Z4
	MOVL   $0xfe, AX
	KMOVW  AX, K2

save:
	CMPQ       CX, $8
	JB         savetail
	VMOVDQU64  (SI), Z0
	VMOVDQU64  Z0, (DX)
	VPXORQ.Z   (DI), Z0, K2, Z1
	VMOVDQU64  (R8), Z2
	VPCLMULQDQ $0x00, Z2, Z1, Z3
	VPCLMULQDQ $0x11, Z2, Z1, Z5
	VPTERNLOGQ $0x96, Z3, Z5, Z4
	KXNORW     K2, K2, K2
	ADDQ       $64, SI
	ADDQ       $64, DI
	ADDQ       $64, DX
	ADDQ       $64, R8
	SUBQ       $8, CX
	JMP        save

savetail:
	TESTQ       CX, CX
	JZ          publish
	MOVL        $1, AX
	SHLL        CL, AX
	DECL        AX
	KMOVW       AX, K1
	KANDW       K1, K2, K3
	VMOVDQU64.Z (SI), K1, Z0
	VMOVDQU64   Z0, K1, (DX)
	VPXORQ.Z    (DI), Z0, K3, Z1
	VMOVDQU64.Z (R8), K1, Z2
	VPCLMULQDQ  $0x00, Z2, Z1, Z3
	VPCLMULQDQ  $0x11, Z2, Z1, Z5
	VPTERNLOGQ  $0x96, Z3, Z5, Z4

publish:
	MOVQ  active+40(FP), R10
	MOVQ  entry+48(FP), AX
	MOVQ  AX, (R10)
	MOVL  (R12), R11
	LEAL  1(R11), AX
	MOVL  AX, (R12)
	MOVQ  R12, SI
	MOVQ  scratch+8(FP), DI
	MOVQ  R13, CX
	MOVL  $0xfc, AX
	KMOVW AX, K2           // the first block: ID and header stay

write:
	CMPQ      CX, $8
	JB        writetail
	VMOVDQU64 (DI), Z0
	VMOVDQU64 Z0, K2, (SI)
	KXNORW    K2, K2, K2
	ADDQ      $64, SI
	ADDQ      $64, DI
	SUBQ      $8, CX
	JMP       write

writetail:
	TESTQ       CX, CX
	JZ          seal
	MOVL        $1, AX
	SHLL        CL, AX
	DECL        AX
	KMOVW       AX, K1
	KANDW       K1, K2, K3
	VMOVDQU64.Z (DI), K3, Z0
	VMOVDQU64   Z0, K3, (SI)

seal:
	VEXTRACTI64X4 $1, Z4, Y0
	VPXOR         Y0, Y4, Y4
	VEXTRACTI128  $1, Y4, X0
	VPXOR         X0, X4, X4
	VMOVQ         X4, AX
	VPEXTRQ       $1, X4, DX
	XORL          CX, CX
	CRC32Q        AX, CX   // the low qword holds the high powers
	CRC32Q        DX, CX
	XORL          R9, CX
	MOVL          CX, 4(R12)
	ADDL          $2, R11
	MOVL          R11, (R12)
	MOVQ          $0, (R10)
	VZEROUPPER
	RET
