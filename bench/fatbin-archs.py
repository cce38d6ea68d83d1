#!/usr/bin/env python3
"""Lists the GPU architectures a CUDA shared library carries code for, without a GPU or cuobjdump.

Usage: bench/fatbin-archs.py LIB.so

Reads every fat binary embedded in the library (magic 0xBA55ED50, 16-byte header, then entries of
kind 1 = PTX, 2 = SASS/ELF with the architecture as a 32-bit number at byte 28 of each entry's
header) and prints each (kind, sm) with the number of fat binaries holding it. SASS runs only on its
own major architecture (sm_80 code runs on sm_86, not on sm_90); PTX can be compiled by the driver
for any newer GPU. A library with no PTX and no SASS of a GPU's major architecture cannot run there.

How it was used (see docs/compute.md): the CUDA backend of ND4J 1.0.0-M2.1
(nd4j-cuda-11.6-1.0.0-M2.1-linux-x86_64-cudnn.jar, libnd4jcuda.so) carries SASS for sm_37 to sm_86
and no PTX, so it has nothing to run on Hopper (sm_90).
"""
import collections
import mmap
import struct
import sys

MAGIC = struct.pack('<I', 0xBA55ED50)


def archs(path):
    counts = collections.Counter()
    binaries = 0
    with open(path, 'rb') as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        pos = 0
        while True:
            i = m.find(MAGIC, pos)
            if i < 0:
                break
            header_size = struct.unpack_from('<H', m, i + 6)[0]
            size = struct.unpack_from('<Q', m, i + 8)[0]
            if header_size != 16 or size == 0 or i + 16 + size > len(m):
                pos = i + 4
                continue
            binaries += 1
            entry, end = i + 16, i + 16 + size
            while entry < end:
                kind, _, entry_header = struct.unpack_from('<HHI', m, entry)
                payload = struct.unpack_from('<Q', m, entry + 8)[0]
                arch = struct.unpack_from('<I', m, entry + 28)[0]
                counts[({1: 'PTX', 2: 'SASS'}.get(kind, str(kind)), arch)] += 1
                if entry_header == 0:
                    break
                entry += entry_header + payload
            pos = end
    return binaries, counts


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    binaries, counts = archs(sys.argv[1])
    print(f'fat binaries: {binaries}')
    for (kind, arch), n in sorted(counts.items()):
        print(f'{kind} sm_{arch}: {n}')


if __name__ == '__main__':
    main()
