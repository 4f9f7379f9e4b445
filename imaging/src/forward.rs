//! A forward-only `Seek` for plain readers, because the PNG decoder asks for `BufRead + Seek`.
//!
//! The producer reads from a file or a pipe and must not load the whole image to satisfy a trait
//! bound. The decoder (png 0.18) only needs to move forward, so skipping ahead is supported and
//! anything else is refused with an error rather than silently buffered.

use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};

/// A buffered reader that knows its position and can seek forward by reading and discarding.
pub(crate) struct ForwardOnly<R> {
    inner: BufReader<R>,
    position: u64,
}

impl<R: Read> ForwardOnly<R> {
    pub(crate) fn new(inner: R) -> ForwardOnly<R> {
        ForwardOnly {
            inner: BufReader::with_capacity(64 * 1024, inner),
            position: 0,
        }
    }
}

impl<R: Read> Read for ForwardOnly<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.position += n as u64;
        Ok(n)
    }
}

impl<R: Read> BufRead for ForwardOnly<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amount: usize) {
        self.inner.consume(amount);
        self.position += amount as u64;
    }
}

impl<R: Read> Seek for ForwardOnly<R> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(at) => Some(at),
            SeekFrom::Current(delta) => self.position.checked_add_signed(delta),
            SeekFrom::End(_) => None,
        };
        match target {
            Some(target) if target >= self.position => {
                let skip = target - self.position;
                let skipped = io::copy(&mut self.by_ref().take(skip), &mut io::sink())?;
                if skipped < skip {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                Ok(self.position)
            }
            _ => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the PNG input is read as a stream and cannot seek backwards or from its end",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_forward_and_refuses_to_go_back() {
        let mut r = ForwardOnly::new(&b"abcdefgh"[..]);
        let mut two = [0; 2];
        r.read_exact(&mut two).unwrap();
        assert_eq!(r.stream_position().unwrap(), 2);
        assert_eq!(r.seek(SeekFrom::Current(3)).unwrap(), 5);
        r.read_exact(&mut two).unwrap();
        assert_eq!(&two, b"fg");
        assert_eq!(
            r.seek(SeekFrom::Start(1)).unwrap_err().kind(),
            io::ErrorKind::Unsupported
        );
        assert_eq!(
            r.seek(SeekFrom::Current(9)).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
    }
}
