import { createReadStream, statSync } from 'node:fs';
import { resolve } from 'node:path';

import { startHttpFixture, type HttpFixture } from './http-fixture';
import { modelsDir } from './models';

/**
 * A stand-in for huggingface.co on 127.0.0.1 (tea-llama pull honours HF_ENDPOINT, as the Hugging Face tools do):
 * `/<user>/<repo>/resolve/<revision>/<path>/<file>.gguf` serves `<file>.gguf` from the shared test models, whatever
 * the user, repo and revision. Anything else is a 404. Its `url` is what HF_ENDPOINT is set to.
 */
export function startHfMirror(dir = modelsDir): Promise<HttpFixture> {
  return startHttpFixture((req, res) => {
    const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    const file = /^\/[^/]+\/[^/]+\/resolve\/[^/]+\/(?:.*\/)?([^/]+\.gguf)$/.exec(path)?.[1];
    let size = -1;
    try {
      if (file) size = statSync(resolve(dir, file)).size;
    } catch {
      size = -1;
    }
    if (!file || size < 0) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(size) });
    createReadStream(resolve(dir, file)).pipe(res);
  });
}
