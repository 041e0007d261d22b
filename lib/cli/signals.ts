import { EXIT } from './output';

/**
 * Runs `handler` on the first SIGINT (Ctrl+C) instead of exiting, so a command can stop its generation and print
 * what it has; a second SIGINT exits at once. Returns the function that removes the handler.
 */
export function onInterrupt(handler: () => void): () => void {
  let count = 0;
  const listener = () => {
    count++;
    if (count > 1) process.exit(EXIT.interrupted);
    handler();
  };
  process.on('SIGINT', listener);
  return () => {
    process.off('SIGINT', listener);
  };
}
