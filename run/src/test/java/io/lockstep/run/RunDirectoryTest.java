package io.lockstep.run;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.lockstep.conf.ConfigurationException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A new run never writes into a file or over an earlier run; a resumed one continues in place. */
class RunDirectoryTest {

  @Test
  void refusesAFileAndAnEarlierRun(@TempDir Path dir) throws Exception {
    assertDoesNotThrow(() -> RunDirectory.check(dir.resolve("new"), false));
    assertDoesNotThrow(() -> RunDirectory.check(dir, false));

    final Path file = Files.writeString(dir.resolve("notes.txt"), "x");
    final String notADirectory =
        assertThrows(ConfigurationException.class, () -> RunDirectory.check(file, false))
            .getMessage();
    assertTrue(notADirectory.startsWith(file + ": a file"), notADirectory);

    for (String done : new String[] {"summary.json", "model.zip", "checkpoint.zip"}) {
      final Path run = Files.createDirectories(dir.resolve("run-" + done));
      Files.writeString(run.resolve(done), "{}");
      final String message =
          assertThrows(ConfigurationException.class, () -> RunDirectory.check(run, false))
              .getMessage();
      assertTrue(message.contains("never overwritten") && message.contains("--resume"), message);
      assertDoesNotThrow(() -> RunDirectory.check(run, true));
    }
  }
}
