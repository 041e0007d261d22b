/**
 * Secrets out of every message and log line: the one place that decides how a URL is shown and what of a text is
 * a credential. Over-redacting a harmless value is fine; showing a credential is not.
 */

export const REDACTED = '[redacted]';

/**
 * Query (and fragment) parameters whose value is a credential: `token`, `access_token`, `key`, `api_key`,
 * `apikey`, `sig`, `signature`, `password`, `secret`, `X-Amz-Signature`, `X-Amz-Credential`, … A name that ends
 * with one of these words counts too (`hf_token`, `client_secret`, `X-Amz-Security-Token`).
 */
const SECRET_PARAM = /(token|key|secret|sig|signature|password|passwd|pwd|pass|credential|credentials|auth|authorization|session|sessionid|jwt|code)$/i;

/** Whether a query parameter's name marks its value as a credential. */
export function isSecretParam(name: string): boolean {
  return SECRET_PARAM.test(name.trim());
}

function redactParams(text: string): string {
  return text
    .split('&')
    .map((part) => {
      const eq = part.indexOf('=');
      const rawName = eq < 0 ? part : part.slice(0, eq);
      let name = rawName;
      try {
        name = decodeURIComponent(rawName.replace(/\+/g, ' '));
      } catch {
        // a malformed escape: judge the raw name
      }
      return eq >= 0 && isSecretParam(name) ? `${rawName}=${REDACTED}` : part;
    })
    .join('&');
}

/**
 * A URL as messages and logs show it: the user name and password replaced by `[redacted]`, and the value of every
 * secret query or fragment parameter (see {@link isSecretParam}) too; everything else as it was. Text that is not
 * a URL gets the same treatment by pattern.
 */
export function redactUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return redactUrlsIn(String(url), true);
  }
  const auth = u.username || u.password ? `${REDACTED}@` : '';
  const search = u.search ? `?${redactParams(u.search.slice(1))}` : '';
  const hash = u.hash ? `#${redactParams(u.hash.slice(1))}` : '';
  // Nothing to hide: the URL exactly as it was given (a message quotes what the user wrote).
  if (!auth && search === u.search && hash === u.hash) return url;
  // The path as the URL parser normalised it; a host may be IPv6 ([::1]) and keeps its brackets.
  return `${u.protocol}//${auth}${u.host}${u.pathname}${search}${hash}`;
}

const URL_IN_TEXT = /\b[a-z][a-z0-9+.-]*:\/\/[^\s"'<>`]+/gi;

/** `user:pass@` after `//`, and the value of every secret `name=value` pair, by pattern (text no URL parser takes). */
function redactByPattern(text: string): string {
  return text
    .replace(/\/\/[^/@\s]*@/g, `//${REDACTED}@`)
    .replace(/([?&#])([^=&#\s]+)=([^&#\s]*)/g, (all, sep: string, name: string) => (isSecretParam(name) ? `${sep}${name}=${REDACTED}` : all));
}

/** Every URL in a text through {@link redactUrl}; `loose` also treats `user:pass@` and `name=value` pairs outside URLs. */
function redactUrlsIn(text: string, loose = false): string {
  const out = text.replace(URL_IN_TEXT, (m) => {
    try {
      new URL(m);
    } catch {
      return redactByPattern(m);
    }
    return redactUrl(m);
  });
  return loose ? redactByPattern(out) : out;
}

/** The forms a secret can take in a text: as is, URL-encoded, and Base64 (standard and URL-safe, at any alignment). */
export function secretForms(secret: string): string[] {
  const forms = new Set<string>([secret]);
  forms.add(encodeURIComponent(secret));
  forms.add(encodeURIComponent(secret).replace(/%20/g, '+'));
  // Base64 of the secret inside a longer Base64 text (`Basic base64(user:secret)`): the characters that depend only
  // on the secret's bytes, for each of the three alignments. Short secrets only in their plain forms: their
  // Base64 fragments would match ordinary text.
  const bytes = Buffer.from(secret, 'utf8');
  if (bytes.length >= 6) {
    for (const shift of [0, 1, 2]) {
      const encoded = Buffer.concat([Buffer.alloc(shift), bytes]).toString('base64');
      const start = [0, 2, 3][shift]!;
      const end = Math.floor(((shift + bytes.length) * 8) / 6);
      const core = encoded.slice(start, end);
      if (core.length >= 8) {
        forms.add(core);
        forms.add(core.replace(/\+/g, '-').replace(/\//g, '_'));
      }
    }
    forms.add(bytes.toString('base64'));
    forms.add(bytes.toString('base64url'));
  }
  return [...forms].filter((f) => f.length > 0).sort((a, b) => b.length - a.length);
}

/**
 * Scrubs a text for a message or a log line: every URL through {@link redactUrl}, `Authorization` header values,
 * Bearer and Basic credentials, and each of `secrets` in its plain, URL-encoded and Base64 forms.
 */
export function redactText(text: string, secrets: ReadonlyArray<string | undefined> = []): string {
  let out = String(text);
  for (const secret of secrets) {
    if (!secret) continue;
    for (const form of secretForms(secret)) out = out.split(form).join(REDACTED);
  }
  out = out
    .replace(/\b((?:proxy-)?authorization)(["']?\s*[:=]\s*["']?)[^\r\n"',;}]+/gi, `$1$2${REDACTED}`)
    .replace(/\b([Bb]earer|BEARER|Basic|BASIC)\s+[A-Za-z0-9._~+/=-]{8,}/g, `$1 ${REDACTED}`);
  return redactUrlsIn(out);
}
