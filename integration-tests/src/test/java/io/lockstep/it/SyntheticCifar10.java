package io.lockstep.it;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;

/**
 * CIFAR-10's binary version (data_batch_1.bin .. data_batch_5.bin, test_batch.bin,
 * batches.meta.txt; records of 1 label byte and the R, G, B planes of 32x32) holding images a
 * network can learn: each class a colour and a stripe frequency of its own, under noise.
 */
final class SyntheticCifar10 {
  static final int RECORD = 1 + 3 * 32 * 32;

  private SyntheticCifar10() {}

  static void write(Path dir, int recordsPerBatch, long seed) throws IOException {
    Files.createDirectories(dir);
    final Random random = new Random(seed);
    for (int file = 1; file <= 5; file++) {
      Files.write(dir.resolve("data_batch_" + file + ".bin"), batch(recordsPerBatch, random));
    }
    Files.write(dir.resolve("test_batch.bin"), batch(recordsPerBatch, random));
    Files.writeString(
        dir.resolve("batches.meta.txt"),
        "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n",
        StandardCharsets.UTF_8);
  }

  private static byte[] batch(int records, Random random) {
    final byte[] bytes = new byte[records * RECORD];
    for (int r = 0; r < records; r++) {
      final int label = random.nextInt(10);
      final int at = r * RECORD;
      bytes[at] = (byte) label;
      for (int channel = 0; channel < 3; channel++) {
        final int base = 40 + 20 * ((label * (channel + 3)) % 10);
        for (int y = 0; y < 32; y++) {
          final int stripe = ((y * (label + 1)) / 8) % 2 == 0 ? 30 : -30;
          for (int x = 0; x < 32; x++) {
            final int value = base + stripe + random.nextInt(81) - 40;
            bytes[at + 1 + channel * 1024 + y * 32 + x] = (byte) Math.max(0, Math.min(255, value));
          }
        }
      }
    }
    return bytes;
  }
}
