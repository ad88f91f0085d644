import { defineConfig, loadEnv } from 'vite'
import react from '@vitejs/plugin-react'

// The console is served by parley under /console/ from the bundle embedded in the
// binary (internal/console/dist). `npm run dev` proxies the API to a running parley
// (PARLEY_URL, default http://127.0.0.1:8080). The proxy presents the target's own
// origin, since parley refuses cross-origin state-changing requests.
export default defineConfig(({ mode }) => {
  const target = loadEnv(mode, '.', 'PARLEY_').PARLEY_URL || 'http://127.0.0.1:8080'
  const proxy = {
    target,
    changeOrigin: true,
    headers: { origin: target },
  }
  return {
    base: '/console/',
    plugins: [react()],
    build: {
      outDir: '../internal/console/dist',
      emptyOutDir: true,
      assetsDir: 'assets',
      sourcemap: false,
    },
    server: {
      proxy: { '/admin': proxy, '/bot-api': proxy, '/whatsapp-api': proxy, '/webhooks': proxy },
    },
  }
})
