/** The phone and channel a trigger is for, as Try it and the builder's Run from here ask. */
export function TriggerFields({
  phoneLabel,
  phone,
  onPhone,
  channel,
  onChannel,
}: {
  phoneLabel: string
  phone: string
  onPhone: (phone: string) => void
  channel: string
  onChannel: (channel: string) => void
}) {
  return (
    <>
      <label>
        {phoneLabel}
        <input inputMode="tel" required placeholder="919876543210" value={phone} onChange={(e) => onPhone(e.target.value)} />
      </label>
      <label>
        Channel
        <select value={channel} onChange={(e) => onChannel(e.target.value)}>
          <option value="whatsapp">WhatsApp</option>
          <option value="rcs">RCS</option>
        </select>
      </label>
    </>
  )
}
