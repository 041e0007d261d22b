// The chart: an SVG written by hand, no charting dependency. One panel per model and metric (tg, then each
// prompt size every model has), bars per contender grouped by thread count, median with a min–max whisker.
import { CONTENDER_IDS, CONTENDERS } from './contenders.mjs';
import { fmt } from './report.mjs';

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** A round axis maximum above v and its tick step. */
function niceScale(v) {
  if (!(v > 0)) return { max: 1, step: 0.25 };
  const raw = v / 4;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((k) => k * mag).find((s) => s >= raw);
  return { max: step * Math.ceil(v / step), step };
}

export function renderChart(results) {
  const { summary, config } = results;
  const contenders = CONTENDER_IDS.filter((id) => config.contenders.includes(id));
  const threads = config.threads;
  const commonPp = results.models.reduce((acc, m) => acc.filter((n) => m.pp.includes(n)), [...config.pp]);
  const metrics = [{ key: 'tg', label: `tg${config.tg}` }, ...commonPp.map((n) => ({ key: `pp${n}`, label: `pp${n}` }))];
  const models = results.models.map((m) => m.name);

  const minWidth = 900;
  const gapX = 22;
  const left = 16;
  const natural = Math.max(200, 40 + threads.length * (contenders.length * 22 + 24));
  const panelW = Math.max(natural, (minWidth - left * 2 - (models.length - 1) * gapX) / models.length);
  const panelH = 210;
  const top = 96;
  const gapY = 40;
  const width = left * 2 + models.length * panelW + (models.length - 1) * gapX;
  const height = top + metrics.length * (panelH + gapY) + 10;
  const out = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif">`);
  out.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`);
  const la = results.load;
  out.push(`<text x="${left}" y="24" font-size="17" font-weight="bold" fill="#111827">tea-llama benchmark: tokens per second</text>`);
  out.push(
    `<text x="${left}" y="44" font-size="12" fill="#4b5563">${esc(
      `${results.machine.cpuModel}, ${results.machine.logicalCpus} CPUs · ${results.date.slice(0, 10)} · context ${config.ctx}, batch ${config.batch} · median of ${config.runs} interleaved run${config.runs > 1 ? 's' : ''}, whiskers min–max · load avg before ${la.before[0].toFixed(2)}, after ${la.after[0].toFixed(2)}`,
    )}</text>`,
  );
  let lx = left;
  for (const id of contenders) {
    out.push(`<rect x="${lx}" y="58" width="12" height="12" fill="${CONTENDERS[id].color}"/>`);
    out.push(`<text x="${lx + 17}" y="68.5" font-size="12" fill="#111827">${esc(CONTENDERS[id].label)}</text>`);
    lx += 30 + CONTENDERS[id].label.length * 6.6;
  }

  metrics.forEach((metric, row) => {
    models.forEach((model, col) => {
      const x0 = left + col * (panelW + gapX);
      const y0 = top + row * (panelH + gapY);
      const plotTop = y0 + 24;
      const plotBottom = y0 + panelH - 22;
      const plotLeft = x0 + 40;
      const plotRight = x0 + panelW - 4;
      const values = threads.flatMap((t) => contenders.map((id) => summary[model]?.[t]?.[id]?.[metric.key]).filter(Boolean));
      // Headroom above the tallest whisker for the value labels.
      const { max, step } = niceScale(1.3 * Math.max(0, ...values.map((s) => s.max)));
      const y = (v) => plotBottom - (v / max) * (plotBottom - plotTop);
      out.push(`<text x="${x0}" y="${y0 + 12}" font-size="13" font-weight="bold" fill="#111827">${esc(model)} · ${esc(metric.label)}</text>`);
      for (let v = 0; v <= max + step / 2; v += step) {
        out.push(`<line x1="${plotLeft}" x2="${plotRight}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#e5e7eb"/>`);
        out.push(`<text x="${plotLeft - 4}" y="${(y(v) + 4).toFixed(1)}" font-size="10" text-anchor="end" fill="#6b7280">${esc(fmt(v, step < 1 ? 2 : 0))}</text>`);
      }
      const groupW = (plotRight - plotLeft) / threads.length;
      const barW = Math.min(20, (groupW - 16) / contenders.length);
      threads.forEach((t, gi) => {
        const gx = plotLeft + gi * groupW + (groupW - barW * contenders.length) / 2;
        contenders.forEach((id, bi) => {
          const s = summary[model]?.[t]?.[id]?.[metric.key];
          const bx = gx + bi * barW;
          if (!s) {
            out.push(`<text x="${(bx + barW / 2).toFixed(1)}" y="${plotBottom - 3}" font-size="9" text-anchor="middle" fill="#9ca3af">–</text>`);
            return;
          }
          const by = y(s.median);
          out.push(
            `<rect x="${(bx + 1).toFixed(1)}" y="${by.toFixed(1)}" width="${(barW - 2).toFixed(1)}" height="${(plotBottom - by).toFixed(1)}" fill="${CONTENDERS[id].color}"><title>${esc(
              `${CONTENDERS[id].label}, ${t} threads: ${fmt(s.median)} t/s (min ${fmt(s.min)}, max ${fmt(s.max)}, ${s.n} runs)`,
            )}</title></rect>`,
          );
          if (s.n > 1 && s.max > s.min) {
            const cx = (bx + barW / 2).toFixed(1);
            out.push(`<line x1="${cx}" x2="${cx}" y1="${y(s.max).toFixed(1)}" y2="${y(s.min).toFixed(1)}" stroke="#111827" stroke-width="1"/>`);
          }
          const label = fmt(s.median, s.median >= 10 ? 0 : 1);
          out.push(
            `<text transform="translate(${(bx + barW / 2 + 3).toFixed(1)} ${(Math.min(by, y(s.max)) - 3).toFixed(1)}) rotate(-90)" font-size="9" fill="#374151">${esc(label)}</text>`,
          );
        });
        out.push(`<text x="${(plotLeft + gi * groupW + groupW / 2).toFixed(1)}" y="${plotBottom + 14}" font-size="11" text-anchor="middle" fill="#374151">${t} thread${t > 1 ? 's' : ''}</text>`);
      });
      out.push(`<line x1="${plotLeft}" x2="${plotRight}" y1="${plotBottom}" y2="${plotBottom}" stroke="#9ca3af"/>`);
    });
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
